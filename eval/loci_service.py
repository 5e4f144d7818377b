"""Start a Loci service for one eval run when no --url is given.

Kept to one function so the runner never depends on how the service is hosted: it only needs
a (url, api_key) pair that works until the context exits.
"""

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def start_local_service() -> Iterator[tuple[str, str]]:
    """Run Loci on a throwaway embedded database and yield (url, api_key); stop and delete it after."""
    from app.local_server import throwaway_service

    with throwaway_service(rate_limit_per_s=0) as (url, api_key):  # a measuring harness is not throttled
        yield url, api_key
