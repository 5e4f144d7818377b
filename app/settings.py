"""All configuration in one object, read from `LOCI_*` environment variables.

Nothing else in the code base reads the environment: components take a `Settings` so tests can
build as many independent configurations as they need.
"""

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.llm import llm_config


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "loci"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOCI_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Data directory of the embedded database.")
    database_url: str | None = Field(
        default=None, description="External Postgres URL; unset means the embedded server under `home`."
    )
    embedded_shared_buffers: str = Field(
        default="1GB",
        pattern=r"^[1-9][0-9]*(kB|MB|GB)$",
        description="shared_buffers of the embedded server (Postgres' own default is 128MB): HNSW searches "
        "read ~1,200 index pages at 1M memories, and each one read from the OS cache instead costs "
        "time. Changed, it applies at once if no other process uses the server, else at its next start.",
    )
    host: str = "127.0.0.1"
    port: int = 8420
    mcp_port: int = Field(default=8421, description="Port of `loci mcp --http` (its endpoint is /mcp).")
    log_level: str = "warning"

    bootstrap_api_key: str | None = None

    embedding_model: str = Field(default="", description="sentence-transformers name or path; empty = bundled MiniLM.")
    embedding_dim: int = 384
    embedding_device: str | None = None
    embedding_batch_size: int = 64
    embedding_max_wait_ms: float = Field(
        default=0.0,
        ge=0.0,
        description="How long the embedder waits for more requests to batch; 0 batches only what already queued "
        "(requests arriving during an encode share the next one) and adds no latency to a lone query.",
    )
    embedding_backend: Literal["torch", "onnx"] = Field(
        default="onnx",
        description="onnx: the model's weights (a mean-pooled transformer, as the bundled model is) exported to "
        "ONNX at start-up and run with onnxruntime (CPU only; ~1.8x faster than torch, used only if it matches "
        "torch within cosine 0.999 on the start-up probe texts); torch: sentence-transformers itself.",
    )
    embedding_threads: int = Field(
        default=0,
        ge=0,
        description="Threads one ONNX model call may use; 0 = onnxruntime's default (one per core).",
    )
    query_cache_size: int = Field(default=4096, ge=0, description="Query embeddings kept (LRU); 0 = no cache.")
    async_embed_batch_min: int = Field(
        default=64, ge=1, description="Write batches this large return before embedding; the worker embeds them."
    )
    embedding_worker: bool = Field(default=True, description="Run the embedding worker inside the API process.")
    embedding_worker_batch: int = Field(default=256, ge=1, description="Pending rows one worker claim embeds.")
    embedding_worker_threads: int = Field(
        default=2, ge=1, description="Claims in flight at once: one encodes while another writes its vectors."
    )
    embedding_worker_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often the worker looks for rows written by other processes."
    )

    max_content_bytes: int = 32 * 1024
    max_metadata_bytes: int = 16 * 1024
    max_query_bytes: int = 4 * 1024
    max_batch: int = 1000
    max_body_bytes: int = 48 * 1024 * 1024
    max_k: int = 200
    keep_alive_s: int = Field(
        default=75,
        gt=0,
        description="How long the server keeps an idle HTTP connection open. Longer than clients keep theirs "
        "(httpx 5 s): with equal timeouts a client can send a request on a connection the server is closing at "
        "that moment, which fails as a read error (seen under load at uvicorn's default of 5 s).",
    )
    max_concurrent_requests: int = Field(
        default=16,
        ge=0,
        description="At most this many requests run at once; later ones wait in arrival order (0: no limit). "
        "Under 64 clients on 2 cores, 16 cut p99 by ~30 % at the same throughput (docs/performance.md, Load).",
    )
    request_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A request still running after this long is answered 503 `timeout`; the database statements "
        "of its tenant transaction are cancelled at the same deadline.",
    )
    rate_limit_per_s: float = Field(
        default=100.0, ge=0, description="Requests per second one API key may sustain, per process; 0 = no limit."
    )
    rate_limit_burst: int = Field(default=200, ge=1, description="Requests one API key may make at once.")
    access_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the uses counted by searches (access_count, last_accessed_at) are written, in "
        "batches off the request path.",
    )
    api_key_cache_size: int = Field(
        default=1024,
        ge=0,
        description="API keys whose principal stays in memory (LRU). Each request still re-checks its key in its "
        "transaction's first statement, so revocation is immediate; 0 = a separate key lookup per request.",
    )
    log_content: bool = Field(
        default=False, description="Write memory content and search queries into logs (they are private data)."
    )
    metrics_enabled: bool = Field(default=True, description="Serve GET /metrics (Prometheus) and time requests.")
    metrics_token: str | None = Field(
        default=None, description="Bearer token GET /metrics then requires; unset = open (aggregates only)."
    )
    metrics_db_min_interval_s: float = Field(
        default=0.0, ge=0, description="Count memories and jobs for /metrics at most this often (each count scans)."
    )
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port where `loci worker` serves its /metrics; unset = none."
    )

    search_overfetch: int = 4
    search_min_candidates: int = 50
    hnsw_ef_search: int = Field(
        default=100, ge=1, le=1000, description="pgvector HNSW search breadth, set in each request's transaction."
    )
    dense_exact_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="pgvector: a scope with fewer memories than this share of the table's rows is searched exactly "
        "through its b-tree instead of by filtered HNSW (a user's 10k of 1M: 11 vs 61 ms); 0 = always HNSW.",
    )
    rrf_k: int = 60
    lexical_backend: Literal["bm25", "postgres"] = Field(
        default="bm25",
        description="bm25: in-process BM25 per scope, fused with cosine by weighted z-scores; "
        "postgres: full-text ts_rank_cd lists fused by reciprocal rank (docs/retrieval.md).",
    )
    dense_weight: float = Field(default=1.0, ge=0, description="Weight of the cosine of the memory's own text.")
    dense_min_spread: float = Field(
        default=0.05,
        ge=0,
        description="Cosines are standardised by their spread over the candidates, but by at least this: in a "
        "small scope, cosines a hair apart would otherwise weigh as much as the question's named period.",
    )
    lexical_weight: float = Field(default=0.25, ge=0, description="Weight of the lexical match of the memory's text.")
    context_weight: float = Field(
        default=1.0, ge=0, description="Weight of BM25 over the memory with its neighbouring turns (bm25 backend)."
    )
    speaker_weight: float = Field(
        default=1.0, ge=0, description="Weight of the question naming the memory's speaker (bm25 backend)."
    )
    time_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the memory's event time falling in the period the question names (bm25 backend).",
    )
    when_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of a memory whose text says when (yesterday, last week, a month, a year) "
        "for a question asking when (bm25 backend).",
    )
    length_weight: float = Field(
        default=0.5,
        ge=0,
        description="Weight of a conversation turn's length (the log of its indexed words): a long turn holds more "
        "of what is asked later than a one-line reply (bm25 backend).",
    )
    key_weight: float = Field(default=0.2, ge=0, description="Weight of matches on consolidation keys.")
    context_window: int = Field(default=2, ge=0, le=10, description="Neighbouring turns each side in the context view.")
    expansion_weight: float = Field(
        default=0.3,
        ge=0,
        description="BM25 weight, times their cosine, of the indexed words nearest a query's words (bm25 backend; "
        "retrieval/term_expansion.py); 0 = no expansion and no vocabulary.",
    )
    expansion_min_cosine: float = Field(default=0.5, ge=-1, le=1, description="Closest a word must be to expand to it.")
    expansion_per_word: int = Field(default=8, ge=1, description="Expansions per query word, at most.")
    expansion_max_terms: int = Field(default=16, ge=1, description="Expansions per query, at most (the closest).")
    expansion_max_words: int = Field(
        default=100_000, ge=0, description="Vocabulary the process learns for expansion (1.5 KB a word)."
    )
    lexical_max_docs: int = Field(
        default=2_000_000,
        ge=1,
        description="Larger scopes are not held in process (~1.5 GB a million memories); they use Postgres full text.",
    )
    index_background_rows: int = Field(
        default=100_000,
        ge=0,
        description="In-process indexes (BM25, FAISS) of scopes larger than this are built and refreshed in the "
        "background, never in a request; until the first build, searches of such a scope use Postgres alone.",
    )
    lexical_max_scopes: int = Field(default=64, ge=1, description="BM25 scope indexes kept in memory.")
    lexical_recheck_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Staleness bound of BM25 indexes for writes made by other processes where their change "
        "notices do not arrive (app/memory_notices.py).",
    )
    dense_backend: Literal["pgvector", "faiss"] = Field(
        default="pgvector", description="Dense candidate generator: pgvector HNSW or an in-process FAISS index."
    )
    faiss_hnsw_threshold: int = Field(default=50_000, ge=1, description="Scopes this large get HNSW, not exact.")
    faiss_ef_search: int = 128
    faiss_max_scopes: int = Field(default=64, ge=1, description="FAISS indexes kept in memory (least recent go).")
    faiss_recheck_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Staleness bound of FAISS indexes for writes made by other processes where their change "
        "notices do not arrive (own writes: none).",
    )

    db_pool_size: int = 10

    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint; unset = no LLM anywhere.")
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout: float = 60.0

    forget_threshold: float = Field(
        default=0.25, ge=0.0, le=1.0, description="Retention strength below which the forget sweep archives."
    )
    scope_capacity: int | None = Field(default=None, ge=1, description="Most active memories per user/agent scope.")
    consolidate_idle_minutes: float = Field(default=30.0, description="A session idle this long gets consolidated.")
    sweep_cron: str = Field(default="*/15 * * * *", description="When the periodic consolidate/forget sweep runs.")
    worker_in_process: bool = Field(default=True, description="Run the job worker inside the API process.")
    job_max_attempts: int = 3
    job_stalled_seconds: float = Field(
        default=30.0, gt=0, description="A running job whose worker is silent this long is requeued."
    )
    use_memory_keys: bool | None = Field(
        default=None,
        description="Write and search consolidation keys as extra ways to a memory; unset = only when an LLM "
        "writes them (LOCI_LLM_BASE_URL and LOCI_LLM_MODEL set).",
    )
    track_access: bool = Field(default=True, description="Count search hits as uses (feeds retention).")

    near_duplicate_threshold: float | None = Field(
        default=0.95, ge=0.0, le=1.0, description="Cosine above which a semantic/procedural write merges; unset = off."
    )

    @property
    def memory_keys_searched(self) -> bool:
        """`use_memory_keys`, or when unset whether an LLM writes the keys. Without one, consolidation's
        keys are the memory's own words and heuristic facts, which BM25 and the dense view already
        score: on LoCoMo dev they moved recall@10 by a few thousandths either way, for ~4 ms a search,
        ~70 % of consolidation's time and 4 KB a memory (docs/retrieval.md). Consolidation writes keys
        only when this holds; episodes consolidated before it was turned on get theirs from the next
        consolidation of their scope."""
        if self.use_memory_keys is not None:
            return self.use_memory_keys
        return llm_config(self.llm_base_url, self.llm_model, self.llm_api_key, self.llm_timeout) is not None

    @cached_property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def embedded(self) -> bool:
        return self.database_url is None
