"""Webhooks: inbound receivers, outbound subscribers, their deliveries and replay protection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from storage.models.base import TZDateTime, json_dict, json_list, new_id, now_column, optional_time, utcnow


class Webhook(SQLModel, table=True):
    """An inbound vendor webhook receiver or an outbound subscriber; the secret is encrypted."""

    __tablename__ = "webhooks"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    integration_id: str = Field(foreign_key="integrations.id", index=True, max_length=32)
    direction: str = Field(default="outbound", max_length=10)  # inbound | outbound
    url: str = Field(default="", max_length=2000)
    events: list[Any] = json_list()
    secret_encrypted: str = Field(default="")
    active: bool = True
    disabled_reason: str = Field(default="")
    description: str = Field(default="", max_length=500)
    revision: int = 1
    created_at: datetime = now_column()
    deleted_at: datetime | None = optional_time()


class WebhookDelivery(SQLModel, table=True):
    """One attempt log of delivering an event to a subscriber."""

    __tablename__ = "webhook_deliveries"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    webhook_id: str = Field(foreign_key="webhooks.id", index=True, max_length=32)
    event_type: str = Field(max_length=100)
    event_id: str = Field(max_length=100, index=True)
    payload: dict[str, Any] = json_dict()
    status: str = Field(default="pending", max_length=20, index=True)
    attempts: int = 0
    response_code: int | None = None
    response_excerpt: str = Field(default="")
    next_attempt_at: datetime | None = optional_time(index=True)
    created_at: datetime = now_column()


class InboundEvent(SQLModel, table=True):
    """A received vendor event, de-duplicated by delivery id for at least seven days."""

    __tablename__ = "inbound_events"
    delivery_id: str = Field(primary_key=True, max_length=200)
    integration_id: str = Field(foreign_key="integrations.id", index=True, max_length=32)
    received_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime, index=True)
    event_type: str = Field(default="", max_length=100)
    payload: dict[str, Any] = json_dict()
    processed: bool = False
