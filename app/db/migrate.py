"""Apply and check Alembic migrations; the app refuses to serve a schema that is behind."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def _config(embedding_dim: int | None = None) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if embedding_dim is not None:
        config.attributes["embedding_dim"] = embedding_dim
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, embedding_dim: int, revision: str = "head") -> None:
    """Migrate to `revision`; an earlier one than head only to test a migration against the data before it."""
    config = _config(embedding_dim)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


class SchemaBehindError(RuntimeError):
    """Raised at start-up when an external database needs `loci migrate` first."""


def ensure_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaBehindError(
            f"database schema is at revision {current or 'none'}, the code needs {head}: run `loci migrate`"
        )
