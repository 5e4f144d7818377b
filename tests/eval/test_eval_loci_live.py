"""The Loci system end to end: a real service (tests/conftest.py's live server) through loci_client."""

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("loci_client", reason="the loci_client SDK is not installed")

from eval.locomo import load_locomo  # noqa: E402
from eval.systems.loci import open_loci  # noqa: E402


def test_against_the_live_service(live_server: Any, locomo_mini: Path) -> None:
    first, second = load_locomo(locomo_mini, "all").episodes
    with open_loci(live_server.url, live_server.api_key) as system:
        system.index(first.units)
        found = system.search("When did Caroline go to the LGBTQ support group?", 5)
        assert found[0] == "D1:1"
        assert set(found) <= {u.id for u in first.units}
        system.index(second.units)
        assert set(system.search("When did Caroline go to the LGBTQ support group?", 5)) <= {"D1:1", "D1:2"}
        assert system.search("puppy name", 1) == ["D1:1"]


def test_without_a_url_a_throwaway_local_service_is_started(locomo_mini: Path) -> None:
    conversation = load_locomo(locomo_mini, "all").episodes[1]
    with open_loci(None, None) as system:
        system.index(conversation.units)
        assert system.search("What is the name of Andrew's puppy?", 2)[0] == "D1:1"
