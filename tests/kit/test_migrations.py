"""The migrations build exactly the schema the models describe, with one head, on the test
database (SQLite or PostgreSQL): a table or column added to a model without its migration fails
here, naming the difference."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tenantry.kit.db import Database
from tenantry.kit.migrations import current_heads
from tenantry.tables import metadata


def test_one_head(database_url: str) -> None:
    assert len(current_heads(database_url)) == 1


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.writer_engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        diff = compare_metadata(context, metadata)
    assert diff == [], f"models and migrations differ: {diff}"
