"""Initial schema: tenants, api keys, memories, links, keys, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _embedding_dim() -> int:
    """Width of the vector columns, chosen once per database from the embedding model's dimension."""
    dim = context.config.attributes.get("embedding_dim")
    if dim is None:
        from app.settings import Settings

        dim = Settings().embedding_dim
    return int(dim)


def upgrade() -> None:
    dim = _embedding_dim()
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        """
        CREATE TABLE tenants (
            id uuid PRIMARY KEY,
            name text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE api_keys (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            name text,
            key_hash text NOT NULL UNIQUE,
            prefix text NOT NULL,
            permissions text[] NOT NULL DEFAULT ARRAY['read', 'write'],
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE memories (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            user_id text,
            agent_id text,
            session_id text,
            type varchar(16) NOT NULL CHECK (type IN ('episodic', 'semantic', 'procedural')),
            content text NOT NULL,
            attributes jsonb NOT NULL DEFAULT '{{}}',
            metadata jsonb NOT NULL DEFAULT '{{}}',
            embedding vector({dim}),
            content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED,
            content_hash text NOT NULL,
            importance double precision NOT NULL DEFAULT 0.5,
            access_count integer NOT NULL DEFAULT 0,
            last_accessed_at timestamptz,
            event_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            valid_from timestamptz,
            valid_to timestamptz,
            expires_at timestamptz,
            status varchar(16) NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'superseded', 'archived', 'deleted')),
            superseded_by uuid REFERENCES memories(id) ON DELETE SET NULL,
            source varchar(16) NOT NULL DEFAULT 'user' CHECK (source IN ('user', 'agent', 'tool', 'import')),
            trust double precision NOT NULL DEFAULT 1.0,
            embedding_model text,
            version integer NOT NULL DEFAULT 1,
            idempotency_key text
        )
        """
    )
    op.execute("CREATE INDEX memories_scope_idx ON memories (tenant_id, user_id, agent_id, session_id)")
    op.execute("CREATE UNIQUE INDEX memories_seq_idx ON memories (tenant_id, seq)")
    op.execute("CREATE INDEX memories_hash_idx ON memories (tenant_id, content_hash)")
    op.execute(
        "CREATE UNIQUE INDEX memories_idempotency_idx ON memories (tenant_id, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL"
    )
    op.execute("CREATE INDEX memories_tsv_idx ON memories USING gin (content_tsv)")
    op.execute("CREATE INDEX memories_embedding_idx ON memories USING hnsw (embedding vector_cosine_ops)")
    op.execute(
        """
        CREATE TABLE memory_links (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            src_id uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
            dst_id uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
            kind varchar(16) NOT NULL
                CHECK (kind IN ('related', 'derived_from', 'supersedes', 'contradicts', 'part_of')),
            weight double precision NOT NULL DEFAULT 1.0,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (src_id, dst_id, kind)
        )
        """
    )
    op.execute("CREATE INDEX memory_links_dst_idx ON memory_links (dst_id)")
    op.execute(
        f"""
        CREATE TABLE memory_keys (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            memory_id uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
            kind varchar(16) NOT NULL CHECK (kind IN ('fact', 'keyword', 'summary')),
            text text NOT NULL,
            embedding vector({dim}),
            text_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX memory_keys_memory_idx ON memory_keys (memory_id)")
    op.execute("CREATE INDEX memory_keys_tsv_idx ON memory_keys USING gin (text_tsv)")
    op.execute("CREATE INDEX memory_keys_embedding_idx ON memory_keys USING hnsw (embedding vector_cosine_ops)")
    op.execute(
        """
        CREATE TABLE memory_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            memory_id uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
            op varchar(32) NOT NULL,
            before jsonb,
            after jsonb,
            actor text,
            reason text,
            at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX memory_events_memory_idx ON memory_events (memory_id, id)")


def downgrade() -> None:
    for table in ("memory_events", "memory_keys", "memory_links", "memories", "api_keys", "tenants"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
