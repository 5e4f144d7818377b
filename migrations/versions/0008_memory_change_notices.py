"""Tell listening processes which scopes a committed write changed (Postgres NOTIFY).

Each API process holds in-process indexes (BM25, FAISS) of the scopes it searches. Writes made by
other processes (replicas, workers, `loci import`) were found only by rechecking a scope's stamp
(count, max seq, max updated_at) every couple of seconds, which never sees an edit whose
transaction commits after a later edit was read: its updated_at is the older, so the stamp stays
as it was and the index keeps the old text or vector until some later change of the scope.

A notice is delivered when its transaction commits, in commit order, so a listener hears every such
write (app/memory_notices.py). The payload is a JSON object: `by`, the writer's `application_name`
(each Loci engine names itself, so a process can skip its own notices); `tenant`; `user` (left out
for a user id too long for a payload: then it means every scope of the tenant); and `pending`, true
when the memory now waits for its vector, which wakes embedding workers in other processes at once
instead of at their next poll. Postgres folds equal notices of one transaction into one, so a bulk
insert for one user sends one.

Only what the indexes read fires it (the columns app/vector_changes.py watches): not the use counts
that every search updates, nor soft deletes, which the search's SQL filters out itself.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

CHANNEL = "loci_memories"
WATCHED = ("content", "attributes", "type", "user_id", "agent_id", "session_id", "event_at", "embedding")


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION loci_send_memory_notice(writer text, tenant uuid, user_id text, pending boolean)
        RETURNS void LANGUAGE sql AS $$
            SELECT pg_notify('{CHANNEL}', CASE WHEN length(user_id) > 1000
                THEN json_build_object('by', writer, 'tenant', tenant, 'pending', pending)
                ELSE json_build_object('by', writer, 'tenant', tenant, 'user', user_id, 'pending', pending)
                END::text)
        $$
    """)
    op.execute("""
        CREATE FUNCTION loci_notify_memory_change() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            writer text := current_setting('application_name');
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                PERFORM loci_send_memory_notice(writer, OLD.tenant_id, OLD.user_id, false);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                PERFORM loci_send_memory_notice(writer, NEW.tenant_id, NEW.user_id, NEW.embedding IS NULL);
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute(f"""
        CREATE TRIGGER memories_notify_change
        AFTER INSERT OR DELETE OR UPDATE OF {", ".join(WATCHED)} ON memories
        FOR EACH ROW EXECUTE FUNCTION loci_notify_memory_change()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER memories_notify_change ON memories")
    op.execute("DROP FUNCTION loci_notify_memory_change()")
    op.execute("DROP FUNCTION loci_send_memory_notice(text, uuid, text, boolean)")
