"""Per-key request rates: a token bucket per API key, held in this process.

Each key may make `burst` requests at once and `rate` a second after that. State lives in the
API process, so N replicas allow a key N times the rate: the limit is a guard against runaway
agents and abuse on one replica, not a billing meter.
"""

import math
import threading
import time
from collections.abc import Callable, Hashable


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        """rate: tokens a second (0 = unlimited); burst: bucket size, also each key's starting balance."""
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: Hashable) -> float:
        """Take one token for `key`: 0.0 when granted, else the seconds until one will be there."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after(wait: float) -> str:
    """Retry-After value (whole seconds, at least 1) for a wait from RateLimiter.acquire."""
    return str(max(1, math.ceil(wait)))
