"""ScopeCache's pacing of a large scope's background refreshes, on a clock the test moves."""

import itertools
import time
from contextlib import closing, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retrieval import scope_cache
from retrieval.scope_cache import BACKGROUND_SHARE, EDIT_MARGIN, EVER, ScopeCache, ScopeKey, Stamp, changed_since


class _Clock:
    """Stands in for the module's `time`: only `monotonic`, which the refreshes below advance."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _settled(cache: ScopeCache[str]) -> None:
    deadline = time.monotonic() + 10
    while cache.busy:
        assert time.monotonic() < deadline, "a background check never finished"
        time.sleep(0.01)


def test_a_large_scope_under_writes_is_refreshed_at_most_a_share_of_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write changes the stamp; a refresh takes 1 s of the clock. After one, this process's next
    writes are taken up only once the refresh's share of the time since has fallen to BACKGROUND_SHARE."""
    clock = _Clock()
    monkeypatch.setattr(scope_cache, "time", clock)
    versions = itertools.count()

    def stamp(_session: Any, _key: ScopeKey) -> Stamp:
        return (1_000, next(versions), None)  # 1,000 rows: over background_rows, so checked in the background

    def refresh(_session: Any, _key: ScopeKey, _previous: str | None, _stamp: Stamp, _from: datetime | None) -> str:
        clock.now += 1.0
        return "index"

    cache: ScopeCache[str] = ScopeCache(stamp, refresh, 4, 0.0, lambda _tenant: nullcontext(), background_rows=10)
    key: ScopeKey = ("tenant", "user")
    with closing(cache):
        assert cache.get(None, key) is None  # type: ignore[arg-type]  # the first build goes to the background
        _settled(cache)
        cache.changed()
        assert cache.get(None, key) == "index"  # type: ignore[arg-type]  # the first build does not hold writes back
        _settled(cache)
        assert cache.refreshes == 2
        wait = 1.0 * (1 / BACKGROUND_SHARE - 1)  # 3 s after a 1 s refresh
        cache.changed()
        clock.now += wait - 0.5
        cache.get(None, key)  # type: ignore[arg-type]
        _settled(cache)
        assert cache.refreshes == 2, "refreshed again before the scope had settled"
        clock.now += 0.5
        cache.get(None, key)  # type: ignore[arg-type]
        _settled(cache)
        assert cache.refreshes == 3


def test_a_change_reported_for_some_scopes_refreshes_those_alone() -> None:
    """Another process's notice names scopes: those are refreshed before their next use even though
    their stamp is unchanged (a late edit leaves it so), and the others are left as they are."""
    refreshed: list[ScopeKey] = []

    def stamp(_session: Any, _key: ScopeKey) -> Stamp:
        return (10, 1, None)  # never changes

    def refresh(_session: Any, key: ScopeKey, _previous: str | None, _stamp: Stamp, _from: datetime | None) -> str:
        refreshed.append(key)
        return "index"

    cache: ScopeCache[str] = ScopeCache(stamp, refresh, 4, 600.0)  # checks run in the caller
    one, other = ("tenant", "one"), ("tenant", "other")

    def use_both() -> None:
        for key in (one, other):
            assert cache.get(None, key) == "index"  # type: ignore[arg-type]

    use_both()
    assert refreshed == [one, other]
    cache.changed({one, ("tenant", "not held")})
    use_both()
    assert refreshed == [one, other, one]
    use_both()
    assert refreshed == [one, other, one], "a reported change is taken once"
    cache.changed()
    use_both()
    assert refreshed == [one, other, one, one, other]


def test_a_refresh_reads_back_to_the_oldest_edit_reported_since_the_last_one() -> None:
    """An edit whose transaction ran longer than EDIT_MARGIN is below the margin's reach: its
    reported `updated_at` is where the next refresh reads from, once; a failed refresh keeps it."""
    reads: list[datetime | None] = []
    failing = False

    def refresh(
        _session: Any, _key: ScopeKey, _previous: str | None, _stamp: Stamp, reread_from: datetime | None
    ) -> str:
        reads.append(reread_from)
        if failing:
            raise ConnectionError("the database went away")
        return "index"

    cache: ScopeCache[str] = ScopeCache(lambda _session, _key: (10, 1, None), refresh, 4, 600.0)
    key: ScopeKey = ("tenant", "user")
    now = datetime.now(UTC)
    assert cache.get(None, key) == "index"  # type: ignore[arg-type]
    cache.changed({key}, now - timedelta(seconds=30))
    cache.changed({key}, now - timedelta(seconds=60))
    cache.changed({key}, now - timedelta(seconds=1))
    failing = True
    with pytest.raises(ConnectionError):
        cache.get(None, key)  # type: ignore[arg-type]
    failing = False
    assert cache.get(None, key) == "index"  # type: ignore[arg-type]
    cache.changed({key})
    cache.get(None, key)  # type: ignore[arg-type]
    cache.changed(None, EVER)
    cache.get(None, key)  # type: ignore[arg-type]
    sixty_back = now - timedelta(seconds=60)
    assert reads == [None, sixty_back, sixty_back, None, EVER]

    latest = now - timedelta(seconds=2)
    assert changed_since(7, latest) == f"(seq > 7 OR updated_at > '{(latest - EDIT_MARGIN).isoformat()}'::timestamptz)"
    assert f"'{(sixty_back - EDIT_MARGIN).isoformat()}'" in changed_since(7, latest, sixty_back)
    assert "'-infinity'" in changed_since(7, latest, EVER)
