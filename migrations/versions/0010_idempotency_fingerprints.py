"""Record what a write with an idempotency key asked for, so that the key sent again with another
memory is refused (409) instead of answered with the first memory's id.

A retry repeats its request, so its memory is the first one's; a different memory under a key
already used is a client's bug (a key reused across writes, or a counter reset), and answering it
with the first id silently dropped the second memory. `idempotency_fingerprint` is a digest of
the memory as written (app/services/memory_store.idempotency_fingerprint). Rows written before
carry none and are not compared. Adding a nullable column rewrites nothing.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE memories ADD COLUMN idempotency_fingerprint text")


def downgrade() -> None:
    op.execute("ALTER TABLE memories DROP COLUMN idempotency_fingerprint")
