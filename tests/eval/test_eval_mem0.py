"""The mem0 peer baseline: runs offline when mem0ai is installed, reports itself skipped otherwise."""

import importlib.util
from pathlib import Path

import pytest

from eval.locomo import load_locomo
from eval.systems import SystemUnavailable
from eval.systems.mem0_peer import open_mem0
from eval.units import Unit

HAS_MEM0 = importlib.util.find_spec("mem0") is not None


@pytest.mark.skipif(HAS_MEM0, reason="mem0ai is installed here")
def test_missing_mem0_is_reported_unavailable() -> None:
    with pytest.raises(SystemUnavailable, match="pip install mem0ai"), open_mem0():
        pass


@pytest.mark.skipif(not HAS_MEM0, reason="mem0ai is not installed")
def test_mem0_runs_offline_and_maps_text_back_to_turns(locomo_mini: Path) -> None:
    units = list(load_locomo(locomo_mini, "all").episodes[0].units)
    twin = Unit("D2:3", "session_2", units[0].text, units[0].timestamp, units[0].name)  # same text as D1:1
    with open_mem0() as system:
        system.index([*units, twin])
        found = system.search("When did Caroline go to the LGBTQ support group?", 10)
        assert set(found[:2]) == {"D1:1", "D2:3"}
        assert sorted(found) == sorted(u.id for u in [*units, twin])
        system.index(units[3:])  # a new episode replaces the old one
        assert sorted(system.search("camping", 10)) == ["D2:1", "D2:2"]
