"""drop indexes that a unique constraint already covers

care_record_versions(record_id) is the prefix of unique(record_id, version) and external_links(integration_id)
the prefix of unique(integration_id, stream, external_id): every insert paid for a second B-tree that no
query needs.

Revision ID: c41d7e2a9f10
Revises: 9e8ced0e3599
Create Date: 2026-11-28 10:05:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = 'c41d7e2a9f10'
down_revision: str | None = '9e8ced0e3599'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('care_record_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_record_versions_record_id'))
    with op.batch_alter_table('external_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_external_links_integration_id'))


def downgrade() -> None:
    with op.batch_alter_table('external_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_external_links_integration_id'), ['integration_id'], unique=False)
    with op.batch_alter_table('care_record_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_record_versions_record_id'), ['record_id'], unique=False)
