"""The `loci` command line: serve, migrate, tenants, and quick add/search against the same database."""

import json
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from app.portability_cli import export_command, import_command
from app.settings import Settings

cli = typer.Typer(help="Loci: long-term memory for AI agents.", no_args_is_help=True, add_completion=False)
tenant_cli = typer.Typer(help="Manage tenants and their API keys.", no_args_is_help=True)
cli.add_typer(tenant_cli, name="tenant")
key_cli = typer.Typer(help="Create, list and revoke a tenant's API keys.", no_args_is_help=True)
cli.add_typer(key_cli, name="key")
err = Console(stderr=True)


def _settings() -> Settings:
    from app.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    return settings


def _prepare_database(settings: Settings) -> None:
    """Migrate (embedded) or check (external) the schema before serving, and on an embedded database
    with no keys at all make one and leave it in LOCI_HOME/api-key: zero set-up, no key in the logs."""
    from sqlalchemy import select

    from app.db.engine import make_sessionmaker
    from app.db.models import ApiKey
    from app.runtime import open_database
    from app.services.tenants import create_tenant_with_key

    engine = open_database(settings)
    try:
        if not settings.embedded or settings.bootstrap_api_key:
            return
        with make_sessionmaker(engine).begin() as session:
            if session.scalar(select(ApiKey.id).limit(1)) is not None:
                return
            key = create_tenant_with_key(session, "default")
    finally:
        engine.dispose()
    path = settings.home / "api-key"
    path.write_text(key + "\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    err.print(f"[green]Created tenant 'default'.[/] Its API key is in {path} (export LOCI_API_KEY=$(cat {path})).")


def _prepare_or_exit(settings: Settings) -> None:
    """`_prepare_database`, exiting 2 with the command to run when an external database is behind."""
    from app.db.migrate import SchemaBehindError

    try:
        _prepare_database(settings)
    except SchemaBehindError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (LOCI_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (LOCI_PORT).")] = None,
) -> None:
    """Run the API. On the embedded database migrations are applied first; an external database
    that is behind is refused with the command to run."""
    import uvicorn

    from app.main import create_app

    settings = _settings()
    _prepare_or_exit(settings)
    host, port = host or settings.host, port or settings.port
    err.print(f"Loci serving on http://{host}:{port} (API docs at /docs)")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_s,
    )


@cli.command()
def mcp(
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP at http://HOST:PORT/mcp, not stdio.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Bind address with --http (LOCI_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port with --http (LOCI_MCP_PORT).")] = None,
    url: Annotated[
        str | None,
        typer.Option(envvar="LOCI_URL", help="A running Loci server; without it the service runs in this process."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="LOCI_API_KEY", help="Default: LOCI_HOME/api-key when running in process.")
    ] = None,
    user_id: Annotated[str | None, typer.Option(help="The user_id of tool calls that give none.")] = None,
    agent_id: Annotated[str | None, typer.Option(help="The agent_id of tool calls that give none.")] = None,
) -> None:
    """Serve memory to MCP clients: tools remember, recall, list_memories, forget and feedback. Over stdio
    (stdout carries only the protocol; logs go to stderr) or streamable HTTP with --http."""
    from app.mcp_backend import NoApiKey
    from app.mcp_server import run_server

    settings = _settings()
    if url is None:
        _prepare_or_exit(settings)
    try:
        run_server(settings, url, api_key, http, host or settings.host, port or settings.mcp_port, user_id, agent_id)
    except NoApiKey as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@cli.command()
def worker(
    embeddings: Annotated[
        bool, typer.Option("--embeddings", help="Only embed deferred writes (no lifecycle jobs).")
    ] = False,
) -> None:
    """Run a lifecycle job worker (consolidate, forget, periodic sweeps) until interrupted; start as
    many as the load needs, on any machine that reaches the database."""
    import signal
    import threading

    from app.runtime import build_runtime

    only_embeddings = {"worker_in_process": False, "embedding_worker": True}
    settings = _settings().model_copy(update=only_embeddings if embeddings else {"worker_in_process": True})
    runtime = build_runtime(settings)
    if settings.worker_metrics_port is not None:
        runtime.metrics.serve(settings.host, settings.worker_metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err.print("Loci worker running (Ctrl-C to stop)")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


@cli.command()
def migrate() -> None:
    """Apply database migrations up to the newest revision."""
    from app.db import migrate as migrations
    from app.runtime import open_database

    settings = _settings()
    engine = open_database(settings, apply_migrations=True)
    err.print(f"schema at revision {migrations.current_revision(engine)}")
    engine.dispose()


def _tenant_name(name: str) -> str:
    """A name `--tenant` can give back: not blank (a blank one was taken, key and all), and at most
    200 characters, as the API's scope ids; NUL is refused by the shell before it gets here."""
    if not name.strip() or len(name) > 200:
        raise typer.BadParameter("give the tenant a name of 1 to 200 characters, not blank")
    return name


@tenant_cli.command("create")
def tenant_create(name: Annotated[str, typer.Argument(callback=_tenant_name)]) -> None:
    """Create a tenant (or reuse one of that name) and print a new API key on its own line."""
    from app.db.engine import make_sessionmaker
    from app.runtime import open_database
    from app.services.tenants import create_tenant_with_key

    settings = _settings()
    engine = open_database(settings)
    with make_sessionmaker(engine).begin() as session:
        key = create_tenant_with_key(session, name)
    engine.dispose()
    print(key)


def _tenant_id(sessions, tenant: str):  # type: ignore[no-untyped-def]
    """The named tenant's id, or exit 2 saying how to create it (the caller disposes of its engine)."""
    from sqlalchemy import select

    from app.db.models import Tenant

    with sessions() as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
    if tenant_id is None:
        err.print(f"[red]no tenant named {tenant!r}[/]: create it with `loci tenant create {tenant}`")
        raise typer.Exit(2)
    return tenant_id


@contextmanager
def _invalid_input_exits() -> Iterator[None]:
    """Options the API would refuse with a 422 end the command with exit status 2 and the same reasons."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "input"
            err.print(f"[red]{field}[/]: {error['msg']}")
        raise typer.Exit(2) from None


def _runtime_and_tenant(tenant: str):  # type: ignore[no-untyped-def]
    from app.runtime import build_runtime

    runtime = build_runtime(_settings())
    try:
        return runtime, _tenant_id(runtime.sessions, tenant)
    except typer.Exit:
        runtime.close()
        raise


@contextmanager
def _tenant_keys(tenant: str, snapshot: bool = False):  # type: ignore[no-untyped-def]
    """A session confined to the named tenant, on the database alone (no model is loaded);
    snapshot=True: one REPEATABLE READ snapshot for the whole transaction (exports)."""
    from app.db.engine import make_sessionmaker
    from app.db.tenancy import confined_session
    from app.runtime import open_database
    from app.services.portability import snapshot_sessions

    engine = open_database(_settings())
    try:
        sessions = make_sessionmaker(engine)
        tenant_id = _tenant_id(sessions, tenant)
        with confined_session(snapshot_sessions(engine) if snapshot else sessions, tenant_id) as session:
            yield session, tenant_id
    finally:
        engine.dispose()


TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant name.")]


@key_cli.command("create")
def key_create(
    tenant: TenantOption,
    permission: Annotated[
        list[str] | None, typer.Option("--permission", "-p", help="read, write or admin; repeat. Default: read, write.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
) -> None:
    """Create a key and print it on its own line (shown this once); its id goes to stderr."""
    from pydantic import ValidationError

    from app.api.schemas import KeyCreate
    from app.services.api_keys import create_key

    try:
        body = KeyCreate(permissions=permission or ["read", "write"], name=name)  # type: ignore[arg-type]
    except ValidationError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    with _tenant_keys(tenant) as (session, tenant_id):
        record, key = create_key(session, tenant_id, body.permissions, body.name)
    err.print(f"key id {record.id} ({', '.join(record.permissions)})")
    print(key)


@key_cli.command("list")
def key_list(tenant: TenantOption) -> None:
    """Print the tenant's keys as JSON lines: id, name, prefix, permissions, dates; never the key."""
    from app.api.schemas import KeyOut
    from app.services.api_keys import list_keys

    with _tenant_keys(tenant) as (session, tenant_id):
        keys = [KeyOut.model_validate(k, from_attributes=True) for k in list_keys(session, tenant_id)]
    for key in keys:
        print(key.model_dump_json())


@key_cli.command("revoke")
def key_revoke(key_id: uuid.UUID, tenant: TenantOption) -> None:
    """Revoke a key of the tenant; requests with it fail with 401 from then on."""
    from app.api.schemas import KeyOut
    from app.errors import ApiError
    from app.services.api_keys import revoke_key

    try:
        with _tenant_keys(tenant) as (session, tenant_id):
            revoked = KeyOut.model_validate(revoke_key(session, tenant_id, key_id), from_attributes=True)
    except ApiError as exc:
        err.print(f"[red]{exc.message}[/] in tenant {tenant!r}")
        raise typer.Exit(2) from None
    print(revoked.model_dump_json())


@cli.command()
def add(
    content: str,
    user_id: Annotated[str, typer.Option(help="Whose memory this is.")],
    type: Annotated[str, typer.Option(help="episodic, semantic or procedural.")] = "episodic",
    session_id: Annotated[str | None, typer.Option()] = None,
    event_at: Annotated[str | None, typer.Option(help="When it happened (ISO 8601); default: now.")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default",
) -> None:
    """Store one memory directly in the database and print its id."""
    from app.api.schemas import MemoryCreate
    from app.db.tenancy import tenant_session
    from app.services.memory_store import create_memories, embed_items
    from app.services.tenants import Principal

    with _invalid_input_exits():
        item = MemoryCreate(type=type, content=content, user_id=user_id, session_id=session_id, event_at=event_at)  # type: ignore[arg-type]
    runtime, tenant_id = _runtime_and_tenant(tenant)
    try:
        vectors = embed_items(runtime.embedder, [item])
        with tenant_session(runtime, Principal.local(tenant_id)) as session:
            [memory_id] = create_memories(
                session, tenant_id, [item], vectors, "cli", runtime.settings.near_duplicate_threshold
            )
    finally:
        runtime.close()
    print(memory_id)


@cli.command()
def search(
    query: str,
    user_id: Annotated[str | None, typer.Option()] = None,
    k: Annotated[int, typer.Option(min=1, max=200)] = 5,
    type: Annotated[list[str] | None, typer.Option(help="Only this memory type (repeatable).")] = None,
    asked_at: Annotated[
        str | None, typer.Option(help='ISO 8601 moment "yesterday", "last week"... count back from; default: now.')
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help='The asker\'s IANA time zone ("Europe/Lisbon"): its days, its naive times.')
    ] = None,
    event_after: Annotated[str | None, typer.Option(help="Only events at or after this time (ISO 8601).")] = None,
    event_before: Annotated[str | None, typer.Option(help="Only events before this time (ISO 8601).")] = None,
    max_words: Annotated[int | None, typer.Option(help="Only the best results that fit in this many words.")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default",
) -> None:
    """Search memories and print the results as JSON lines."""
    from app.api.schemas import SearchRequest
    from app.services.searching import run_search
    from app.services.tenants import Principal

    with _invalid_input_exits():
        request = SearchRequest(
            query=query,
            user_id=user_id,
            k=k,
            types=type,  # type: ignore[arg-type]
            asked_at=asked_at,  # type: ignore[arg-type]
            timezone=timezone,
            event_after=event_after,  # type: ignore[arg-type]
            event_before=event_before,  # type: ignore[arg-type]
            max_words=max_words,
        )
    runtime, tenant_id = _runtime_and_tenant(tenant)
    try:
        response = run_search(runtime, Principal.local(tenant_id), request)
    finally:
        runtime.close()
    for result in response.results:
        print(json.dumps({"id": str(result.id), "score": round(result.score, 5), "content": result.content}))


cli.command("export")(export_command)
cli.command("import")(import_command)


def _mount_optional() -> None:
    from benchmarks.cli import bench_app

    cli.add_typer(bench_app, name="bench")
    try:
        from eval.cli import eval_app
    except ImportError:
        return
    cli.add_typer(eval_app, name="eval", help="Evaluate retrieval on LoCoMo and LongMemEval.")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _mount_optional()
    cli()


if __name__ == "__main__":
    main()
