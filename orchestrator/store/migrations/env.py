"""Alembic environment: the engine comes from duban's config (``config.attributes["engine"]``)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from orchestrator.store import models  # noqa: F401

target_metadata = SQLModel.metadata
DUBAN_TABLES = set(target_metadata.tables)


def include_name(name, type_, parent_names):
    return type_ != "table" or name in DUBAN_TABLES


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
