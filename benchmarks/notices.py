"""What the change notices cost the writers of memories (`loci bench notices`).

Every committed change of what the in-process indexes read sends a notice (migrations 0008, 0009;
app/memory_notices.py), and Postgres serialises the commits of notifying transactions on one lock.
Here the trigger is switched off and on in alternating rounds of the same writes, with the
service's own listener reading as it does in production: single-row edit transactions a second
from one thread and from eight, and one `UPDATE` of every memory of the scope (BULK_TIMES: its
rows given one time, one notice; or each its own, a notice a row). Reported: the medians of each
and their ratios, on over off (a throughput ratio under 1, a time ratio over 1, is the notices'
cost), the notices a listener got of each bulk edit with the trigger off and on, and what one call
of `loci_send_memory_notice` costs Postgres, with and without an edit time (the part of a notice's
cost that its payload's form decides).
"""

import statistics
import threading
import time
from contextlib import closing
from typing import Any

from sqlalchemy import Engine, text

from app.local_server import throwaway_runtime
from app.memory_notices import CHANNEL
from benchmarks.common import SERVICE, USER, client_for, grow_to

_EDIT = text("UPDATE memories SET content = :content, updated_at = clock_timestamp() WHERE id = :id")
NOTICE_WAIT_S = 0.5  # a bulk edit's notice comes at its commit: this only bounds the wait for none
_EDIT_ALL = "UPDATE memories SET content = content || '.', updated_at = {time} WHERE user_id = :u"
# Its rows share the transaction's time, as the service's writes give one time to a statement; or each
# row gets its own, as a hand-written bulk update may: a notice each, since 0009 puts the time in it.
BULK_TIMES = {"bulk_edit": "now()", "bulk_edit_row_times": "clock_timestamp()"}
CALLS = 20_000  # notices queued by one statement, each for its own user so that none are folded
_CALL_ARGUMENTS = {"notice_call_us": "false", "notice_call_edited_us": "false, clock_timestamp()"}
_CALLS_SQL = (
    "SELECT count({call}) FROM (SELECT 'bench' AS w, gen_random_uuid() AS t, 'user-' || i AS u"
    f" FROM generate_series(1, {CALLS}) AS i) AS calls"
)


def _switch(engine: Engine, on: bool) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE memories {'ENABLE' if on else 'DISABLE'} TRIGGER memories_notify_change"))


def _edits_per_second(engine: Engine, ids: list[Any], threads: int, seconds: float) -> float:
    """Single-row edit transactions committed a second by `threads` writers, each on its own rows."""
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def write(worker: int) -> None:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                memory_id = ids[(worker + done[worker] * threads) % len(ids)]
                conn.execute(_EDIT, {"content": f"edit {worker}-{done[worker]}", "id": memory_id})
                conn.commit()
                done[worker] += 1

    writers = [threading.Thread(target=write, args=(worker,)) for worker in range(threads)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    return sum(done) / seconds


def _bulk_edit(engine: Engine, time_sql: str) -> tuple[float, int]:
    """Milliseconds of one edit of every memory of the scope, each row's `updated_at` set to
    `time_sql`, and the notices a listener got of it."""
    with closing(engine.raw_connection()) as pooled:
        listener = pooled.driver_connection
        listener.execute(f"LISTEN {CHANNEL}")
        listener.commit()
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(_EDIT_ALL.format(time=time_sql)), {"u": USER})
        elapsed_ms = (time.perf_counter() - started) * 1000
        heard = sum(1 for _ in listener.notifies(timeout=NOTICE_WAIT_S))
        listener.execute(f"UNLISTEN {CHANNEL}")
        listener.commit()
    return elapsed_ms, heard


def _statement_us(engine: Engine, call: str) -> float:
    """Microseconds per row of one `_CALLS_SQL` statement, in a transaction rolled back (its notices
    are never sent)."""
    with engine.connect() as conn:
        started = time.perf_counter()
        conn.execute(text(_CALLS_SQL.format(call=call)))
        elapsed = time.perf_counter() - started
        conn.rollback()
    return elapsed / CALLS * 1e6


def _notice_call_us(engine: Engine, rounds: int) -> dict[str, float]:
    """What a call of `loci_send_memory_notice` adds to a statement (median over `rounds`): building
    its payload and queueing it, without the commit that sends it."""
    samples: dict[str, list[float]] = {name: [] for name in _CALL_ARGUMENTS}
    for _ in range(rounds):
        baseline = _statement_us(engine, "NULL")
        for name, arguments in _CALL_ARGUMENTS.items():
            samples[name].append(_statement_us(engine, f"loci_send_memory_notice(w, t, u, {arguments})") - baseline)
    return {name: round(statistics.median(values), 2) for name, values in samples.items()}


def run(memories: int, rounds: int, seconds: float) -> dict[str, Any]:
    with throwaway_runtime(**SERVICE) as (url, key, runtime), client_for(url, key) as client:
        grow_to(client, memories, 0)
        engine = runtime.engine
        with engine.connect() as conn:
            ids = list(conn.scalars(text("SELECT id FROM memories WHERE user_id = :u"), {"u": USER}))
        heard: dict[tuple[bool, str], int] = {}  # notices each bulk edit sent, in the last round of each setting
        measured: dict[bool, dict[str, list[float]]] = {on: {} for on in (False, True)}
        for round_number in range(rounds + 1):  # the first round warms up and is dropped
            for on in (False, True) if round_number % 2 else (True, False):
                _switch(engine, on)
                sample = {
                    "edits_per_s_1": _edits_per_second(engine, ids, 1, seconds),
                    "edits_per_s_8": _edits_per_second(engine, ids, 8, seconds),
                }
                for name, time_sql in BULK_TIMES.items():
                    sample[f"{name}_ms"], heard[on, name] = _bulk_edit(engine, time_sql)
                if round_number:
                    for name, value in sample.items():
                        measured[on].setdefault(name, []).append(value)
        _switch(engine, True)
        call_costs = _notice_call_us(engine, rounds)
    result: dict[str, Any] = {"memories": memories, "rounds": rounds, "seconds_per_measure": seconds, **call_costs}
    for (on, name), count in sorted(heard.items()):
        result[f"{name}_notices_{'on' if on else 'off'}"] = count
    for name in measured[True]:
        off, on = statistics.median(measured[False][name]), statistics.median(measured[True][name])
        result[f"{name}_off"], result[f"{name}_on"] = round(off, 1), round(on, 1)
        result[f"{name}_ratio"] = round(on / off, 3)
    return result
