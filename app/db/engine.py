"""Engine construction: one place that turns settings into a connection pool."""

import uuid

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.embedded import start_embedded
from app.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """The external URL when configured, else the embedded server's (starting it if needed)."""
    if settings.database_url:
        url = settings.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix) :]
        return url
    return start_embedded(settings.pgdata, settings.embedded_shared_buffers)


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """hide_parameters: a failed statement's message (logged, or stored as a job's error) must not
    quote the bound values, which are memory content and embeddings. Each engine's connections carry
    a name of their own (`application_name`, also seen in pg_stat_activity), which the memory change
    notices carry back, so a process can tell its own writes' notices (app/memory_notices.py)."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"application_name": f"loci-{uuid.uuid4().hex[:12]}"},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
