"""Prometheus metrics: one registry per runtime, never the process-global default.

The runtime owns the registry because the things measured belong to it (the embedder, the job
worker, the embedding worker) and because `loci worker` processes have metrics but no app; tests
build several runtimes in one process, which the global registry would refuse as duplicates.

Counts that live in the database (memories, pending embeddings, queued jobs) are read at scrape
time by `DatabaseGauges`, so every replica reports the same cluster-wide numbers whichever
process did the work. Those queries run as the connecting role, outside the tenant wall, because
they are cross-tenant by nature; they return aggregates only, and no label carries a tenant, a
user or any content: tenant ids would be harmless as values but unbounded as label cardinality
(one series per tenant per type per status), which Prometheus handles badly. Per-tenant numbers
are what `GET /v1/stats` is for.
"""

import logging
import threading
import time
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

# A scrape must answer even when the database is slow: its queries give up after this long.
SCRAPE_STATEMENT_TIMEOUT_MS = 5000

_BOUND_SCRAPE = text("SELECT set_config('statement_timeout', :ms, true)")
# One scan of memories for both gauges; the pending sum matches GET /v1/stats (every status).
_MEMORIES = text(
    "SELECT type, status, count(*) AS total, count(*) FILTER (WHERE embedding IS NULL) AS pending "
    "FROM memories GROUP BY type, status"
)
_QUEUE = text("SELECT task_name, status::text, count(*) FROM procrastinate_jobs GROUP BY task_name, status")
_NOTICES = text("SELECT pg_notification_queue_usage()")

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_JOB_BUCKETS = (0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class DatabaseGauges(Collector):
    """Memories per type and status, pending embeddings, queue jobs and the server's notice queue,
    read when scraped.

    Counting scans `memories` (~27 ms per 10k rows here, docs/scaling.md); `min_interval_s` lets a
    large database be counted at most that often per process, scrapes in between getting the last
    counts.
    """

    def __init__(self, sessions: sessionmaker[Session], min_interval_s: float = 0.0) -> None:
        self._sessions = sessions
        self._min_interval = min_interval_s
        self._lock = threading.Lock()
        self._last: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last[0] >= self._min_interval:
                self._last = (now, list(self._count()))
            return iter(self._last[1])

    def _count(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("loci_database_up", "1 when the scrape-time database counts could be read.")
        try:
            with self._sessions() as session:
                session.execute(_BOUND_SCRAPE, {"ms": str(SCRAPE_STATEMENT_TIMEOUT_MS)})
                memories = session.execute(_MEMORIES).all()
                queue = session.execute(_QUEUE).all()
                notices = session.execute(_NOTICES).scalar_one()
                session.rollback()
        except SQLAlchemyError as exc:
            log.warning("metrics scrape could not read the database: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        per_type = GaugeMetricFamily(
            "loci_memories", "Memories by type and status, all tenants.", labels=["type", "status"]
        )
        for row in memories:
            per_type.add_metric([row.type, row.status], row.total)
        yield per_type
        yield GaugeMetricFamily(
            "loci_pending_embeddings",
            "Memories stored with their embedding still pending (the embedding worker's backlog).",
            value=sum(row.pending for row in memories),
        )
        jobs = GaugeMetricFamily(
            "loci_queue_jobs", "Task-queue jobs (procrastinate) by task and status.", labels=["task", "status"]
        )
        for task, status, count in queue:
            jobs.add_metric([task, status], count)
        yield jobs
        yield GaugeMetricFamily(
            "loci_notification_queue_usage",
            "Share of Postgres's notice queue in use (0-1). It grows while a listener does not read;"
            " once full, writes that notify (memories, migration 0008) fail.",
            value=notices,
        )


class Metrics:
    """The registry and the metrics observed in process (requests, embedding batches, jobs)."""

    def __init__(self, sessions: sessionmaker[Session], db_min_interval_s: float = 0.0) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "loci_http_request_duration_seconds",
            "HTTP request latency by method, route template and status class.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.embedding_batch_size = Histogram(
            "loci_embedding_batch_size",
            "Texts per model call of the embedder.",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.embedding_seconds = Histogram(
            "loci_embedding_batch_duration_seconds", "Time of one model call of the embedder.", registry=self.registry
        )
        self.jobs = Histogram(
            "loci_job_duration_seconds",
            "Lifecycle job run time by kind and outcome (succeeded, retried, failed).",
            ["kind", "outcome"],
            buckets=_JOB_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(DatabaseGauges(sessions, db_min_interval_s))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, f"{status // 100}xx").observe(seconds)

    def observe_embedding_batch(self, size: int, seconds: float) -> None:
        self.embedding_batch_size.observe(size)
        self.embedding_seconds.observe(seconds)

    def observe_job(self, kind: str, outcome: str, seconds: float) -> None:
        self.jobs.labels(kind, outcome).observe(seconds)

    def serve(self, host: str, port: int) -> WSGIServer:
        """/metrics on a port of its own, for processes with no API (`loci worker`); a daemon thread."""
        server, _ = start_http_server(port, host, registry=self.registry)
        return server
