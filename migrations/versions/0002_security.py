"""Security: the tenant wall (row-level security) and memory provenance flags.

Every tenant-owned table gets a `tenant_wall` policy that shows and accepts only the rows of the
tenant named by the transaction setting `loci.tenant_id`. Superusers and table owners bypass row
security, and the app connects as one of them (`postgres` on the embedded server, the owner on an
external database), so tenant transactions switch to the role `loci_app` (`SET LOCAL ROLE`), which
has plain table privileges and no way around the policies. Cross-tenant work (looking up an API
key before its tenant is known, background jobs, migrations) keeps the connecting role.

`loci_app` is a cluster-wide role: it is created once (when missing) and granted to the migrating
role so the app can switch to it. A migrating role that may not create or grant roles needs a
DBA to run `CREATE ROLE loci_app NOLOGIN; GRANT loci_app TO <app role>;` first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APP_ROLE = "loci_app"
TENANT_TABLES = ("api_keys", "memories", "memory_links", "memory_keys", "memory_events")
DATA_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def upgrade() -> None:
    op.execute("ALTER TABLE memories ADD COLUMN flags text[] NOT NULL DEFAULT '{}'")
    # Trust follows the source from now on; before this revision every row was stored with 1.0.
    op.execute(
        "UPDATE memories SET trust = CASE source WHEN 'agent' THEN 0.8 WHEN 'tool' THEN 0.6 "
        "WHEN 'import' THEN 0.5 ELSE 1.0 END"
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
            END IF;
            IF NOT pg_has_role(current_user, '{APP_ROLE}', 'SET') THEN
                EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role % may not create or grant role {APP_ROLE}; as a superuser run: '
                'GRANT {APP_ROLE} TO % (after CREATE ROLE {APP_ROLE} NOLOGIN if it does not exist)',
                current_user, quote_ident(current_user);
        END
        $$
        """
    )
    # Inlined into each policy: a missing or empty setting selects no tenant, hence no rows.
    op.execute(
        """
        CREATE FUNCTION loci_current_tenant() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT NULLIF(current_setting('loci.tenant_id', true), '')::uuid $$
        """
    )
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_wall ON tenants USING (id = loci_current_tenant())")
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_wall ON {table} "
            "USING (tenant_id = loci_current_tenant()) WITH CHECK (tenant_id = loci_current_tenant())"
        )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT ON tenants TO {APP_ROLE}")
    op.execute(f"GRANT {DATA_PRIVILEGES} ON {', '.join(TENANT_TABLES)} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    # Tables of later revisions get the same privileges; each still needs its own policy.
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {DATA_PRIVILEGES} ON TABLES TO {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE {DATA_PRIVILEGES} ON TABLES FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    for table in ("tenants", *TENANT_TABLES):
        op.execute(f"DROP POLICY IF EXISTS tenant_wall ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS loci_current_tenant()")
    op.execute("ALTER TABLE memories DROP COLUMN IF EXISTS flags")
    # The role itself stays: roles are cluster-wide and may serve other databases.
