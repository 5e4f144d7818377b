"""`loci export` and `loci import`: the admin routes' work, straight on the database and a file.

No body-size limit and no request deadline apply here, so this is the way to move a large tenant
or to re-embed one with another model (docs/operations.md). Only the database is opened; the
embedding model is loaded only when an import has to re-embed.
"""

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    import numpy as np

    from app.embedder import Embedder
    from app.settings import Settings

err = Console(stderr=True)
TenantName = Annotated[str, typer.Option("--tenant", help="Tenant name.")]


def _model_name(settings: "Settings") -> str:
    """The name memories record for the configured model (app.embedder's rule), without loading it."""
    from app.embedder import BUNDLED_MODEL_NAME

    return settings.embedding_model or BUNDLED_MODEL_NAME


class _LazyEmbedder:
    """Loads the model on first use: importing a file made with the configured model never needs it."""

    def __init__(self, settings: "Settings") -> None:
        self.settings = settings
        self.embedder: Embedder | None = None

    def __call__(self, texts: list[str]) -> "np.ndarray":
        if self.embedder is None:
            from app.runtime import embedder_from

            self.embedder = embedder_from(self.settings)  # the service's encoder: its vectors match what it stores
        return self.embedder.embed(texts)

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()


def export_command(
    out: Annotated[Path, typer.Option("--out", help="File to write (JSON Lines).", dir_okay=False)],
    tenant: TenantName = "default",
    user_id: Annotated[str | None, typer.Option(help="Only this user's memories.")] = None,
    agent_id: Annotated[str | None, typer.Option(help="Only this agent's memories.")] = None,
    session_id: Annotated[str | None, typer.Option(help="Only this session's memories.")] = None,
) -> None:
    """Write the tenant's (or a scope's) memories, links, keys and history to a loci-export file."""
    from app.cli import _settings, _tenant_keys
    from app.runtime import vector_width
    from app.services.portability import Scope, export_lines, export_records

    settings = _settings()
    partial = out.with_name(out.name + ".partial")  # renamed once complete: no half file under the name
    counts: dict[str, int] = {}
    try:
        with (
            _tenant_keys(tenant, snapshot=True) as (session, tenant_id),
            partial.open("w", encoding="utf-8") as file,
            _progress(None) as progress,
        ):
            task = progress.add_task("exporting", total=None)
            scope = Scope(user_id, agent_id, session_id)
            dims = vector_width(session.get_bind())
            records = export_records(session, tenant_id, scope, _model_name(settings), dims)  # type: ignore[arg-type]
            for line in export_lines(_counted(records, counts)):
                file.write(line)
                progress.advance(task)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    print(json.dumps({"exported": counts, "file": str(out)}))


def _counted(records: Iterable[dict[str, Any]], counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    for record in records:
        if record.get("kind") == "end":
            counts.update(record["counts"])
        yield record


def import_command(
    file: Annotated[Path, typer.Argument(help="A loci-export file.", exists=True, dir_okay=False)],
    tenant: TenantName = "default",
    on_conflict: Annotated[
        str, typer.Option(help="An id already stored: fail (nothing imported) or skip it.")
    ] = "fail",
) -> None:
    """Restore a loci-export file into the tenant in one transaction (all or nothing); a file made with
    another embedding model is re-embedded with the configured one."""
    from app.cli import _settings, _tenant_keys
    from app.errors import ApiError
    from app.runtime import vector_width
    from app.services.portability import TargetModel, import_lines

    if on_conflict not in ("fail", "skip"):
        err.print("[red]--on-conflict is fail or skip[/]")
        raise typer.Exit(2)
    settings = _settings()
    size = file.stat().st_size
    try:
        with (
            closing(_LazyEmbedder(settings)) as embed,
            file.open("rb") as lines,
            _progress(size) as progress,
            _tenant_keys(tenant) as (session, tenant_id),
        ):
            task = progress.add_task("importing", total=size)
            target = TargetModel(_model_name(settings), vector_width(session.get_bind()), embed)  # type: ignore[arg-type]
            summary = import_lines(session, tenant_id, _advancing(lines, progress, task), target, on_conflict)  # type: ignore[arg-type]
    except ApiError as exc:
        err.print(f"[red]{exc.message}[/] (nothing was imported)")
        raise typer.Exit(1) from None
    print(summary.model_dump_json())


def _advancing(lines: Iterable[bytes], progress: Progress, task: TaskID) -> Iterator[bytes]:
    for line in lines:
        progress.advance(task, len(line))
        yield line


def _progress(total_bytes: int | None) -> Progress:
    """A bar over bytes read for imports; a running count of records for exports (total unknown)."""
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    columns.insert(2, DownloadColumn() if total_bytes else TextColumn("{task.completed} records"))
    return Progress(*columns, console=err, transient=True)
