"""model registry and experiment tracking — experiments, runs, params, tags, metric history and
latest values, logged models, registered models and versions with aliases, tags and reads, and
artifacts with size and sha256

Revision ID: 0010
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_artifacts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_ml_artifacts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_ml_artifacts_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_artifacts")),
        sa.UniqueConstraint("team_id", "path", name=op.f("uq_ml_artifacts_team_id_path")),
    )
    with op.batch_alter_table("ml_artifacts", schema=None) as batch_op:
        batch_op.create_index("ix_ml_artifacts_org_id", ["org_id"], unique=False)

    op.create_table(
        "ml_experiments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_ml_experiments_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_ml_experiments_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_experiments")),
        sa.UniqueConstraint("team_id", "name", name=op.f("uq_ml_experiments_team_id_name")),
    )
    with op.batch_alter_table("ml_experiments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ml_experiments_org_id_lifecycle", ["org_id", "lifecycle_stage"], unique=False
        )

    op.create_table(
        "ml_registered_models",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "metadata",
            tenantry.kit.db.JSONType,
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_ml_registered_models_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_ml_registered_models_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_registered_models")),
        sa.UniqueConstraint("team_id", "name", name=op.f("uq_ml_registered_models_team_id_name")),
    )
    with op.batch_alter_table("ml_registered_models", schema=None) as batch_op:
        batch_op.create_index("ix_ml_rm_org_id", ["org_id"], unique=False)

    op.create_table(
        "ml_experiment_tags",
        sa.Column("experiment_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["ml_experiments.id"],
            name=op.f("fk_ml_experiment_tags_experiment_id_ml_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_ml_experiment_tags")),
    )
    op.create_table(
        "ml_registered_model_tags",
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ml_registered_models.id"],
            name=op.f("fk_ml_registered_model_tags_model_id_ml_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_ml_registered_model_tags")),
    )
    op.create_table(
        "ml_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("experiment_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("user_name", sa.String(length=250), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["ml_experiments.id"],
            name=op.f("fk_ml_runs_experiment_id_ml_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_ml_runs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_ml_runs_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_runs")),
    )
    with op.batch_alter_table("ml_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ml_runs_experiment_id_start_ms", ["experiment_id", "start_ms"], unique=False
        )

    op.create_table(
        "ml_latest_metrics",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ml_runs.id"],
            name=op.f("fk_ml_latest_metrics_run_id_ml_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_ml_latest_metrics")),
    )
    with op.batch_alter_table("ml_latest_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_ml_latest_metrics_key_value", ["key", "value"], unique=False)

    op.create_table(
        "ml_logged_models",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("experiment_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("source_run_id", sa.String(length=32), nullable=True),
        sa.Column("model_type", sa.String(length=250), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["ml_experiments.id"],
            name=op.f("fk_ml_logged_models_experiment_id_ml_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_ml_logged_models_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_run_id"],
            ["ml_runs.id"],
            name=op.f("fk_ml_logged_models_source_run_id_ml_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_ml_logged_models_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_logged_models")),
    )
    with op.batch_alter_table("ml_logged_models", schema=None) as batch_op:
        batch_op.create_index("ix_ml_logged_models_experiment_id", ["experiment_id"], unique=False)

    op.create_table(
        "ml_metrics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ml_runs.id"],
            name=op.f("fk_ml_metrics_run_id_ml_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_metrics")),
    )
    with op.batch_alter_table("ml_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ml_metrics_run_id_key_step", ["run_id", "key", "step"], unique=False
        )

    op.create_table(
        "ml_run_params",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ml_runs.id"],
            name=op.f("fk_ml_run_params_run_id_ml_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_ml_run_params")),
    )
    op.create_table(
        "ml_run_tags",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ml_runs.id"],
            name=op.f("fk_ml_run_tags_run_id_ml_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_ml_run_tags")),
    )
    op.create_table(
        "ml_logged_model_params",
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ml_logged_models.id"],
            name=op.f("fk_ml_logged_model_params_model_id_ml_logged_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_ml_logged_model_params")),
    )
    op.create_table(
        "ml_logged_model_tags",
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ml_logged_models.id"],
            name=op.f("fk_ml_logged_model_tags_model_id_ml_logged_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_ml_logged_model_tags")),
    )
    op.create_table(
        "ml_model_versions",
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("logged_model_id", sa.String(length=40), nullable=True),
        sa.Column("framework", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("downloads", sa.BigInteger(), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["logged_model_id"],
            ["ml_logged_models.id"],
            name=op.f("fk_ml_model_versions_logged_model_id_ml_logged_models"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ml_registered_models.id"],
            name=op.f("fk_ml_model_versions_model_id_ml_registered_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_ml_model_versions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ml_runs.id"],
            name=op.f("fk_ml_model_versions_run_id_ml_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_ml_model_versions_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "version", name=op.f("pk_ml_model_versions")),
    )
    with op.batch_alter_table("ml_model_versions", schema=None) as batch_op:
        batch_op.create_index("ix_ml_model_versions_run_id", ["run_id"], unique=False)

    op.create_table(
        "ml_run_outputs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ml_logged_models.id"],
            name=op.f("fk_ml_run_outputs_model_id_ml_logged_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ml_runs.id"],
            name=op.f("fk_ml_run_outputs_run_id_ml_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "model_id", name=op.f("pk_ml_run_outputs")),
    )
    op.create_table(
        "ml_model_aliases",
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("alias", sa.String(length=250), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["ml_model_versions.model_id", "ml_model_versions.version"],
            name=op.f("fk_ml_model_aliases_model_id_ml_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "alias", name=op.f("pk_ml_model_aliases")),
    )
    op.create_table(
        "ml_model_version_reads",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["ml_model_versions.model_id", "ml_model_versions.version"],
            name=op.f("fk_ml_model_version_reads_model_id_ml_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_ml_model_version_reads_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_model_version_reads")),
    )
    with op.batch_alter_table("ml_model_version_reads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ml_model_version_reads_version", ["model_id", "version", "at_ms"], unique=False
        )

    op.create_table(
        "ml_model_version_tags",
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["ml_model_versions.model_id", "ml_model_versions.version"],
            name=op.f("fk_ml_model_version_tags_model_id_ml_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id", "version", "key", name=op.f("pk_ml_model_version_tags")
        ),
    )


def downgrade() -> None:
    op.drop_table("ml_model_version_tags")
    with op.batch_alter_table("ml_model_version_reads", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_model_version_reads_version")

    op.drop_table("ml_model_version_reads")
    op.drop_table("ml_model_aliases")
    op.drop_table("ml_run_outputs")
    with op.batch_alter_table("ml_model_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_model_versions_run_id")

    op.drop_table("ml_model_versions")
    op.drop_table("ml_logged_model_tags")
    op.drop_table("ml_logged_model_params")
    op.drop_table("ml_run_tags")
    op.drop_table("ml_run_params")
    with op.batch_alter_table("ml_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_metrics_run_id_key_step")

    op.drop_table("ml_metrics")
    with op.batch_alter_table("ml_logged_models", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_logged_models_experiment_id")

    op.drop_table("ml_logged_models")
    with op.batch_alter_table("ml_latest_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_latest_metrics_key_value")

    op.drop_table("ml_latest_metrics")
    with op.batch_alter_table("ml_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_runs_experiment_id_start_ms")

    op.drop_table("ml_runs")
    op.drop_table("ml_registered_model_tags")
    op.drop_table("ml_experiment_tags")
    with op.batch_alter_table("ml_registered_models", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_rm_org_id")

    op.drop_table("ml_registered_models")
    with op.batch_alter_table("ml_experiments", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_experiments_org_id_lifecycle")

    op.drop_table("ml_experiments")
    with op.batch_alter_table("ml_artifacts", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_artifacts_org_id")

    op.drop_table("ml_artifacts")
