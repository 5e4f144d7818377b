"""Lifecycle: a jobs table for consolidate/forget status, consolidation bookkeeping, and the
procrastinate task-queue schema (the queue lives in the same Postgres as the memories).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from procrastinate.schema import SchemaManager

    op.execute(
        """
        CREATE TABLE jobs (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            kind varchar(32) NOT NULL CHECK (kind IN ('consolidate', 'forget')),
            scope jsonb NOT NULL,
            dry_run boolean NOT NULL DEFAULT false,
            status varchar(16) NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
            counts jsonb NOT NULL DEFAULT '{}',
            error text,
            attempts integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, created_at)")
    # Behind the tenant wall of 0002, like every tenant-owned table.
    op.execute("ALTER TABLE jobs ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_wall ON jobs "
        "USING (tenant_id = loci_current_tenant()) WITH CHECK (tenant_id = loci_current_tenant())"
    )
    op.execute("ALTER TABLE memories ADD COLUMN consolidated_at timestamptz")
    op.execute(
        "CREATE INDEX memories_unconsolidated_idx ON memories (tenant_id, user_id, session_id) "
        "WHERE consolidated_at IS NULL AND type = 'episodic'"
    )
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS jobs")
    op.execute("ALTER TABLE memories DROP COLUMN IF EXISTS consolidated_at")
