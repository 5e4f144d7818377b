"""A memory-change notice of an edit carries the memory's new `updated_at`.

An in-process index catches up with a scope by reading the rows added past its highest seq or
edited after its latest `updated_at`, less a margin of a few seconds (retrieval/scope_cache.py,
EDIT_MARGIN). `updated_at` is set before its transaction commits, so an edit in a transaction that
ran longer than the margin (a bulk re-tagging, a job, a client holding its transaction open) and
committed after a later edit of its scope had been read fell below that bound: its notice made the
index refresh, but the refresh did not read it back, and the index kept the old text or vector.

Now the notice of an update that set a new `updated_at` says which (`edited`), and the listener
reads the scope back from there. Inserts need none (their seq finds them), nor do updates that
leave `updated_at` as it was (the embedding worker's vectors: an index learns of those by their
count). Postgres folds equal notices of one transaction, and a statement's rows usually share one
`updated_at`, so a bulk edit for one user still sends one. (An update now names the memory's
former scope only where it left it: 0008's notice of it was folded into the new scope's, which the
edit time now sets apart.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CHANNEL = "loci_memories"


def _send_function(edited: bool) -> str:
    """`loci_send_memory_notice`: 0008's, or with the edit time as a fifth argument."""
    extra_argument = ", edited timestamptz DEFAULT NULL" if edited else ""
    payload = """CASE WHEN length(user_id) > 1000
                THEN json_build_object('by', writer, 'tenant', tenant, 'pending', pending)
                ELSE json_build_object('by', writer, 'tenant', tenant, 'user', user_id, 'pending', pending)
                END"""
    if edited:
        payload = f"""({payload}::jsonb || CASE WHEN edited IS NULL THEN '{{}}'::jsonb
                ELSE jsonb_build_object('edited', edited) END)"""
    return f"""
        CREATE FUNCTION loci_send_memory_notice(writer text, tenant uuid, user_id text, pending boolean{extra_argument})
        RETURNS void LANGUAGE sql AS $$
            SELECT pg_notify('{CHANNEL}', {payload}::text)
        $$
    """


def _trigger_function(edited: bool) -> str:
    """`loci_notify_memory_change`: 0008's, or passing the new `updated_at` of an edit that set one,
    and naming the memory's former scope only where it left it (0008's notice of the former scope
    was folded into the new one's, which the edit time now sets apart)."""
    if edited:
        former_scope = (
            "TG_OP = 'DELETE' OR (TG_OP = 'UPDATE'"
            " AND (OLD.tenant_id, OLD.user_id) IS DISTINCT FROM (NEW.tenant_id, NEW.user_id))"
        )
        edit_time = (
            ", CASE WHEN TG_OP = 'UPDATE' AND NEW.updated_at IS DISTINCT FROM OLD.updated_at THEN NEW.updated_at END"
        )
    else:
        former_scope, edit_time = "TG_OP <> 'INSERT'", ""
    return f"""
        CREATE OR REPLACE FUNCTION loci_notify_memory_change() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            writer text := current_setting('application_name');
        BEGIN
            IF {former_scope} THEN
                PERFORM loci_send_memory_notice(writer, OLD.tenant_id, OLD.user_id, false);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                PERFORM loci_send_memory_notice(writer, NEW.tenant_id, NEW.user_id, NEW.embedding IS NULL{edit_time});
            END IF;
            RETURN NULL;
        END $$
    """


def upgrade() -> None:
    op.execute("DROP FUNCTION loci_send_memory_notice(text, uuid, text, boolean)")
    op.execute(_send_function(edited=True))
    op.execute(_trigger_function(edited=True))


def downgrade() -> None:
    op.execute("DROP FUNCTION loci_send_memory_notice(text, uuid, text, boolean, timestamptz)")
    op.execute(_send_function(edited=False))
    op.execute(_trigger_function(edited=False))
