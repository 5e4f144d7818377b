"""Give index keys their memory's scope, so a scope's keys are read from an index of their own.

A consolidated scope has about one key per memory. Searching a user's keys had to start from the
user's memories and probe `memory_keys_memory_idx` once for each: 10k probes, ~30 ms of a search
at one user's 10k of a consolidated million (docs/performance.md). With the scope columns on the
key, the keys of a scope are one range of `memory_keys_scope_idx`, and the memories are read only
for the few keys that rank.

The columns are copied from the memory by a trigger on insert rather than by each writer
(consolidation, import, bulk loads), so they cannot disagree with it: a memory's scope never
changes after it is written (`PATCH /v1/memories/{id}` does not take one). Searches still apply
the full filter on the memory, so a key's scope only narrows where to look.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCOPE_COLUMNS = ("user_id", "agent_id", "session_id")


# Rebuilt around the backfill: it writes a new version of every key, and inserting each into the
# HNSW graph one by one takes far longer than building the graph again.
REBUILT_INDEXES = {
    "memory_keys_embedding_idx": "CREATE INDEX memory_keys_embedding_idx ON memory_keys USING hnsw (embedding vector_cosine_ops)",
    "memory_keys_tsv_idx": "CREATE INDEX memory_keys_tsv_idx ON memory_keys USING gin (text_tsv)",
}


def upgrade() -> None:
    for column in SCOPE_COLUMNS:
        op.execute(f"ALTER TABLE memory_keys ADD COLUMN {column} text")
    for name in REBUILT_INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute(
        f"""
        UPDATE memory_keys k SET {", ".join(f"{c} = m.{c}" for c in SCOPE_COLUMNS)}
        FROM memories m WHERE m.id = k.memory_id
        """
    )
    for ddl in REBUILT_INDEXES.values():
        op.execute(ddl)
    op.execute(
        f"""
        CREATE FUNCTION loci_memory_key_scope() RETURNS trigger
        LANGUAGE plpgsql
        AS $$
        BEGIN
            SELECT {", ".join(f"m.{c}" for c in SCOPE_COLUMNS)}
            INTO {", ".join(f"NEW.{c}" for c in SCOPE_COLUMNS)}
            FROM memories m WHERE m.id = NEW.memory_id;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER memory_key_scope BEFORE INSERT OR UPDATE ON memory_keys "
        "FOR EACH ROW EXECUTE FUNCTION loci_memory_key_scope()"
    )
    op.execute(f"CREATE INDEX memory_keys_scope_idx ON memory_keys (tenant_id, {', '.join(SCOPE_COLUMNS)})")


def downgrade() -> None:
    op.execute("DROP INDEX memory_keys_scope_idx")
    op.execute("DROP TRIGGER memory_key_scope ON memory_keys")
    op.execute("DROP FUNCTION loci_memory_key_scope()")
    for column in SCOPE_COLUMNS:
        op.execute(f"ALTER TABLE memory_keys DROP COLUMN {column}")
