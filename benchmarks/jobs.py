"""What the lifecycle jobs cost per user scope (`loci bench jobs`).

The sweep (app/jobs/queue.py) consolidates every user's idle sessions and runs a forget pass over
every user with active memories, every 15 minutes by default, so a tenant's cost is these per-user
figures times its users. Memories are bulk-loaded as in `loci bench scale` (sessions of 50 turns);
a tenth of each user's are aged so they decay. Each user is consolidated, then passed over twice by
forget: the first pass archives that tenth, the second finds nothing, which is what most passes of a
sweep do. Timed in process (no HTTP: the sweep calls the jobs directly), with the write-ahead log
each wrote, a measure of the pages it dirtied.
"""

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from sqlalchemy import text

from app.jobs.consolidate import consolidate
from app.jobs.forget import forget
from app.jobs.queue import due_scopes
from app.local_server import throwaway_runtime
from app.runtime import Runtime
from benchmarks.scale import SCALE_SERVICE, bulk_load, user_of

DECAYED_EVERY = 10  # one memory in ten is old and unused
AGE = "400 days"  # past every type's half-lives at the default threshold


def _timed(runtime: Runtime, job: Callable[[], dict[str, int]]) -> dict[str, Any]:
    with runtime.engine.connect() as conn:
        wal_start = conn.execute(text("SELECT pg_current_wal_lsn()")).scalar()
    started = time.perf_counter()
    counts = job()
    seconds = time.perf_counter() - started
    with runtime.engine.connect() as conn:
        wal = conn.execute(text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :w)"), {"w": wal_start}).scalar()
    return {"seconds": round(seconds, 3), "wal_mb": round(float(wal) / 1e6, 2), **counts}


def run(memories: int, per_user: int, users: int) -> dict[str, Any]:
    with throwaway_runtime(**SCALE_SERVICE) as (_, _key, runtime):
        with runtime.engine.connect() as conn:
            tenant_id = conn.execute(text("SELECT id FROM tenants")).scalar_one()
        bulk_load(runtime, tenant_id, memories, per_user)
        with runtime.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE memories SET created_at = now() - interval '{AGE}' WHERE seq % {DECAYED_EVERY} = 0")
            )
            conn.execute(text("CHECKPOINT"))  # the first job starts after one, as a sweep 15 minutes on would
        runs = []
        for number in range(min(users, memories // per_user)):
            scope = {"user_id": user_of(number * per_user, per_user)}
            runs.append(
                {**scope, "job": "consolidate", **_timed(runtime, partial(consolidate, runtime, tenant_id, scope))}
            )
            for kind in ("forget, archiving", "forget, nothing to do"):
                runs.append({**scope, "job": kind, **_timed(runtime, partial(forget, runtime, tenant_id, scope))})
        due = _finding_due_scopes(runtime)
    return {"memories": memories, "per_user": per_user, "runs": runs, "finding_due_scopes": due}


def _finding_due_scopes(runtime: Runtime) -> dict[str, Any]:
    """Seconds the sweep takes to find its scopes over the whole tenant, best of three, as configured
    and with keys searched: then it also looks for episodes consolidated without keys (all those the
    runs above consolidated, unless keys were on)."""
    found: dict[str, Any] = {}
    for name, settings in (
        ("as configured", runtime.settings),
        ("keys searched", runtime.settings.model_copy(update={"use_memory_keys": True})),
    ):
        configured = replace(runtime, settings=settings)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            scopes = due_scopes(configured)
            times.append(time.perf_counter() - started)
        found[name] = {
            "seconds": round(min(times), 3),
            "consolidate": sum(kind == "consolidate" for *_, kind in scopes),
        }
    return found
