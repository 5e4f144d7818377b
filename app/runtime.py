"""The long-lived parts of a running service: settings, database engine and embedder.

Built once at start-up (or once per test session) and handed to the app, so nothing else holds
module-level state.
"""

import gc
import logging
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from threadpoolctl import threadpool_limits

from app.db import migrate
from app.db.embedded import release_embedded
from app.db.engine import make_engine, make_sessionmaker, resolve_database_url
from app.db.tenancy import confined_session
from app.embedder import Embedder
from app.jobs.access_counts import AccessCounts
from app.jobs.embedding_worker import EmbeddingWorker
from app.jobs.queue import JobQueue, libpq_url
from app.memory_notices import MemoryNotices, Notice
from app.metrics import Metrics
from app.query_cache import QueryEmbeddings
from app.services.key_cache import KeyCache
from app.services.tenants import ensure_bootstrap_key
from app.settings import Settings
from app.vector_changes import deliver_inserts, is_text_write, notify_vector_changes
from retrieval.faiss_index import FaissIndexes
from retrieval.lexical_index import LexicalIndexes
from retrieval.scope_cache import InsertedRow
from retrieval.term_expansion import ExpansionParams, WordVectors
from retrieval.tokens import stem

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    embedder: Embedder
    jobs: JobQueue
    queries: QueryEmbeddings
    metrics: Metrics
    key_cache: KeyCache
    access_counts: AccessCounts
    dense_index: FaissIndexes | None = None
    lexical_index: LexicalIndexes | None = None
    embedding_worker: EmbeddingWorker | None = None
    memory_notices: MemoryNotices | None = None

    def indexes(self) -> list[LexicalIndexes | FaissIndexes]:
        """The in-process indexes held now (the search benchmark swaps dense ones in and out)."""
        return [index for index in (self.lexical_index, self.dense_index) if index is not None]

    def close(self) -> None:
        if self.embedding_worker is not None:
            self.embedding_worker.close()
        self.access_counts.close()
        if self.memory_notices is not None:
            self.memory_notices.close()
        for index in self.indexes():
            index.close()
        self.jobs.close()
        self.embedder.close()
        self.engine.dispose()
        if self.settings.embedded:
            release_embedded(self.settings.pgdata)


def open_database(settings: Settings, apply_migrations: bool | None = None) -> Engine:
    """Connect, then migrate (embedded default) or check the schema (external database)."""
    engine = make_engine(resolve_database_url(settings), settings.db_pool_size)
    if apply_migrations if apply_migrations is not None else settings.embedded:
        migrate.upgrade(engine, settings.embedding_dim)
    else:
        migrate.ensure_current(engine)
    return engine


def vector_width(engine: Engine) -> int | None:
    """Width of memories.embedding as created by the migration."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'memories'::regclass AND attname = 'embedding'")
        ).scalar()


def start_embedding_worker(runtime: Runtime) -> EmbeddingWorker:
    """The in-process embedding worker of the runtime's settings, started."""
    s = runtime.settings
    worker = EmbeddingWorker(
        runtime.sessions,
        runtime.embedder,
        s.embedding_worker_batch,
        s.embedding_worker_poll_seconds,
        s.embedding_worker_threads,
    )
    worker.start()
    return worker


def embedder_from(settings: Settings) -> Embedder:
    """The embedder the service runs with these settings (the ingest benchmark times it raw too)."""
    return Embedder(
        settings.embedding_model,
        settings.embedding_device,
        settings.embedding_batch_size,
        settings.embedding_max_wait_ms,
        settings.embedding_backend,
        settings.embedding_threads,
    )


def build_runtime(settings: Settings, embedder: Embedder | None = None) -> Runtime:
    engine = open_database(settings)
    embedder = embedder or embedder_from(settings)
    width = vector_width(engine)
    if width != embedder.dim:
        engine.dispose()
        raise RuntimeError(
            f"the database stores {width}-d vectors but {embedder.model_name} makes {embedder.dim}-d ones; "
            "use a fresh database (LOCI_HOME) or set LOCI_EMBEDDING_DIM before the first migration"
        )
    sessions = make_sessionmaker(engine)
    if settings.bootstrap_api_key:
        with sessions.begin() as session:
            if ensure_bootstrap_key(session, settings.bootstrap_api_key):
                log.warning("registered LOCI_BOOTSTRAP_API_KEY for tenant 'default'")
    url = engine.url.render_as_string(hide_password=False)
    jobs = JobQueue(libpq_url(url), settings.job_max_attempts, settings.sweep_cron, settings.job_stalled_seconds)
    metrics = Metrics(sessions, settings.metrics_db_min_interval_s)
    embedder.on_batch = metrics.observe_embedding_batch
    queries = QueryEmbeddings(embedder, settings.query_cache_size)
    runtime = Runtime(
        settings,
        engine,
        sessions,
        embedder,
        jobs,
        queries,
        metrics,
        KeyCache(settings.api_key_cache_size),
        AccessCounts(sessions, settings.access_flush_seconds),
    )
    _start_performance_parts(runtime)
    if settings.worker_in_process:
        jobs.start_worker(runtime)
    _limit_blas_threads()
    stem("start")  # imports nltk (~1.5 s) now rather than in the first request, and before the heap is frozen
    _freeze_start_up_heap()
    return runtime


def _limit_blas_threads() -> None:
    """Run numpy's matrix products (OpenBLAS) on one thread, for the whole process.

    The service's products are small: a query's words against the word vocabulary
    (retrieval/term_expansion.py), fusion's few hundred scores. OpenBLAS splits one over its pool
    anyway, and the pool's threads spin-wait after each, on the cores the model and Postgres need.
    In a consolidated 10k scope (`loci bench search`'s last row; 300 searches, 2026-11-27) search
    p50 / p95 was 12.8 / 23.3 ms with the pool and 11.2 / 13.6 on one thread (10.6 / 14.6 with
    word expansion off). The model (onnxruntime, torch) and FAISS keep their own threads."""
    threadpool_limits(limits=1, user_api="blas")


def _freeze_start_up_heap() -> None:
    """Take what start-up allocated out of the garbage collector's sight, for good.

    Importing torch, transformers, SQLAlchemy and pydantic and loading the model leave ~600k
    container objects that live as long as the process. Every full collection walked all of them
    while holding the GIL, stopping every request thread: in a 40 s run of `loci bench load` ten of
    them took 3.5 s, up to 400 ms each. With that heap frozen, the run's full collections took 0.3 s
    in all and 52 ms at most, and its p99 went from 950 to 708 ms. Start-up garbage is collected
    first, so nothing already unreachable is frozen."""
    gc.collect()
    gc.freeze()


def _hand_over_inserts(runtime: Runtime, rows: list[InsertedRow]) -> None:
    """Committed inserts to the in-process indexes the runtime holds when they arrive."""
    for index in runtime.indexes():
        index.appended(rows)


def _noticed(runtime: Runtime, notice: Notice) -> None:
    """A committed write heard of (another process's, or a late edit of this one's): the scopes it
    changed to the in-process indexes, and a memory left waiting for its vector to the embedding
    worker."""
    for index in runtime.indexes():
        index.changed(notice.scopes, notice.edited)
    if notice.pending and runtime.embedding_worker is not None:
        runtime.embedding_worker.notify()


def _start_performance_parts(runtime: Runtime) -> None:
    """The in-process indexes (BM25 unless Postgres full text is chosen; FAISS when chosen) and the
    in-process embedding worker (when enabled)."""
    s = runtime.settings
    open_session = partial(confined_session, runtime.sessions)  # for rechecks of other processes' writes
    if s.lexical_backend == "bm25":
        runtime.lexical_index = LexicalIndexes(
            s.context_window,
            s.lexical_max_docs,
            s.lexical_max_scopes,
            s.lexical_recheck_seconds,
            open_session,
            s.index_background_rows,
            vocabulary=WordVectors(runtime.embedder.embed, runtime.embedder.dim, s.expansion_max_words)
            if s.expansion_weight > 0
            else None,
            expansion=ExpansionParams(
                s.expansion_weight, s.expansion_min_cosine, s.expansion_per_word, s.expansion_max_terms
            ),
        )
        notify_vector_changes(
            runtime.engine, runtime.lexical_index.changed, receives_inserts=True, changes=is_text_write
        )
    if s.dense_backend == "faiss":
        runtime.dense_index = FaissIndexes(
            s.faiss_hnsw_threshold,
            s.faiss_ef_search,
            s.faiss_max_scopes,
            s.faiss_recheck_seconds,
            open_session,
            s.index_background_rows,
        )
        notify_vector_changes(runtime.engine, runtime.dense_index.changed, receives_inserts=True)
    deliver_inserts(runtime.sessions, partial(_hand_over_inserts, runtime))
    if s.embedding_worker:
        runtime.embedding_worker = start_embedding_worker(runtime)
    if runtime.indexes() or runtime.embedding_worker is not None:
        runtime.memory_notices = MemoryNotices(runtime.engine, partial(_noticed, runtime))
