"""Migration plans and phases (the spec's MigrationPlan and MigrationPhase)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel import Field, SQLModel

from storage.models.base import json_dict, json_list, new_id, now_column


class MigrationPlan(SQLModel, table=True):
    """A move off a legacy system; ``wizard_state`` lets the wizard resume after a reload."""

    __tablename__ = "migration_plans"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    legacy_system: str = Field(max_length=100)
    integration_id: str | None = Field(default=None, foreign_key="integrations.id", max_length=32)
    data_types: list[Any] = json_list()
    status: str = Field(default="draft", max_length=20)
    wizard_step: str = Field(default="choose", max_length=40)
    wizard_state: dict[str, Any] = json_dict()
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = now_column()


class MigrationPhase(SQLModel, table=True):
    """One phase of a migration: its data types, dates, success criteria and rollback triggers."""

    __tablename__ = "migration_phases"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    plan_id: str = Field(foreign_key="migration_plans.id", index=True, max_length=32)
    phase_name: str = Field(max_length=200)
    position: int = 0
    data_types: list[Any] = json_list()
    start_date: date | None = None
    end_date: date | None = None
    success_criteria: list[Any] = json_list()
    rollback_triggers: list[Any] = json_list()
    validation_checks: list[Any] = json_list()
    status: str = Field(default="planned", max_length=20)
    run_id: str = Field(default="", max_length=32)
    report: dict[str, Any] = json_dict()
