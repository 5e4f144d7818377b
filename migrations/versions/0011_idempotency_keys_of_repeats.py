"""Record the idempotency key of a write that stored no memory of its own: one that reinforced a
memory already stored (an exact or near duplicate) or repeated an earlier item of its batch.

Such a key was kept nowhere, so the write sent again (a client, or the SDK since 0.3.0, resending
after a lost answer) was found as a duplicate again and reinforced the memory a second time. The
key and its fingerprint (migration 0010) now go on the write's event in `memory_events`, unique per
tenant like the memories' keys, and a key is looked up in both. A partial index over the keyed
events only: building it reads the table once and holds it against writes meanwhile.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE memory_events ADD COLUMN idempotency_key text, ADD COLUMN idempotency_fingerprint text")
    op.execute(
        "CREATE UNIQUE INDEX memory_events_idempotency_idx ON memory_events (tenant_id, idempotency_key)"
        " WHERE idempotency_key IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX memory_events_idempotency_idx")
    op.execute("ALTER TABLE memory_events DROP COLUMN idempotency_key, DROP COLUMN idempotency_fingerprint")
