"""Database tables; the schema is created and changed only through Alembic (`migrations/`)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; timestamps must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class RevisionAction(StrEnum):
    create = "create"
    edit = "edit"
    delete = "delete"


class ArchiveStatus(StrEnum):
    pending = "pending"
    archived = "archived"
    failed = "failed"
    skipped = "skipped"


class EnumText(TypeDecorator[Any]):
    """A `StrEnum` stored as its plain string value (the column stays a VARCHAR)."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(self.enum(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Plan(Base):
    __tablename__ = "coach_plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    coach_name: Mapped[str] = mapped_column(String(32))
    date: Mapped[dt.date] = mapped_column(Date)
    plan_text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str | None] = mapped_column(String(100))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    source_message_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    edited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Levels read from plan_text (coach_plans_api.levels, JSON form); None until they are read.
    plan_levels: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    charts: Mapped[list[Chart]] = relationship(
        back_populates="plan",
        order_by="Chart.chart_order",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    tickers: Mapped[list[PlanTicker]] = relationship(
        order_by="PlanTicker.position", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        # One live plan per coach and day; deleted rows keep their history beside it.
        Index(
            "uq_coach_plans_live",
            "coach_name",
            "date",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_coach_plans_coach_name_date", "coach_name", "date"),
        Index("ix_coach_plans_date", "date"),
    )


class Chart(Base):
    __tablename__ = "plan_charts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("coach_plans.id", ondelete="CASCADE"), index=True)
    chart_url: Mapped[str] = mapped_column(Text)
    chart_order: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # Discord's signed attachment URLs expire: each chart is copied into the chart store.
    archive_status: Mapped[ArchiveStatus] = mapped_column(
        EnumText(ArchiveStatus), default=ArchiveStatus.pending, server_default="pending"
    )
    archive_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    archive_error: Mapped[str | None] = mapped_column(Text)
    archive_next_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    plan: Mapped[Plan] = relationship(back_populates="charts")

    __table_args__ = (Index("ix_plan_charts_archive_status", "archive_status"),)


class PlanTicker(Base):
    __tablename__ = "plan_tickers"

    plan_id: Mapped[int] = mapped_column(ForeignKey("coach_plans.id", ondelete="CASCADE"), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_plan_tickers_ticker", "ticker"),)


class Revision(Base):
    __tablename__ = "plan_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("coach_plans.id", ondelete="CASCADE"), index=True)
    action: Mapped[RevisionAction] = mapped_column(EnumText(RevisionAction))
    plan_text: Mapped[str] = mapped_column(Text)
    charts_json: Mapped[str] = mapped_column(Text)
    editor: Mapped[str] = mapped_column(String(100))
    editor_id: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str | None] = mapped_column(String(32), index=True)
    payload_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class DatabaseIdentity(Base):
    """One row naming this database, so the API can tell its file from another one put in its place."""

    __tablename__ = "database_identity"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class BotHeartbeat(Base):
    __tablename__ = "bot_heartbeats"

    bot_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connected: Mapped[bool] = mapped_column(Boolean)
    mock_mode: Mapped[bool] = mapped_column(Boolean)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
