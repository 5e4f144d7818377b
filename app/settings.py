"""All configuration in one object, read from `LOCI_*` environment variables.

Nothing else in the code base reads the environment: components take a `Settings` so tests can
build as many independent configurations as they need.
"""

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "loci"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOCI_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Data directory of the embedded database.")
    database_url: str | None = Field(
        default=None, description="External Postgres URL; unset means the embedded server under `home`."
    )
    host: str = "127.0.0.1"
    port: int = 8420
    log_level: str = "warning"

    bootstrap_api_key: str | None = None

    embedding_model: str = Field(default="", description="sentence-transformers name or path; empty = bundled MiniLM.")
    embedding_dim: int = 384
    embedding_device: str | None = None
    embedding_batch_size: int = 64
    embedding_max_wait_ms: float = 2.0

    max_content_bytes: int = 32 * 1024
    max_metadata_bytes: int = 16 * 1024
    max_query_bytes: int = 4 * 1024
    max_batch: int = 1000
    max_body_bytes: int = 48 * 1024 * 1024
    max_k: int = 200

    search_overfetch: int = 4
    search_min_candidates: int = 50
    hnsw_ef_search: int = 100
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0

    db_pool_size: int = 10

    near_duplicate_threshold: float | None = Field(
        default=0.95, ge=0.0, le=1.0, description="Cosine above which a semantic/procedural write merges; unset = off."
    )

    @cached_property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def embedded(self) -> bool:
        return self.database_url is None
