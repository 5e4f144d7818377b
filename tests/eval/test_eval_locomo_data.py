"""Loading LoCoMo: sessions, dates, captions, evidence parsing and splits."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eval.locomo import SPLITS, load_locomo, parse_evidence, parse_session_date


def test_session_dates_parse_to_utc() -> None:
    assert parse_session_date("1:56 pm on 8 May, 2023") == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert parse_session_date("12:09 am on 13 September, 2023") == datetime(2023, 9, 13, 0, 9, tzinfo=UTC)


def test_evidence_parsing_skips_malformed_and_dangling_references() -> None:
    known = {"D1:1", "D1:2", "D2:1", "D30:5"}
    valid, malformed, dangling = parse_evidence(["D1:2", "D8:6; D2:1", "D", "D:11:26", "D9:9", "D30:05", "D1:2"], known)
    assert valid == ["D1:2", "D2:1", "D30:5"]
    assert malformed == ["D", "D:11:26"]
    assert dangling == ["D8:6; D2:1", "D9:9"]


def test_mini_file_units_and_questions(locomo_mini: Path) -> None:
    data = load_locomo(locomo_mini, "all")
    assert [e.id for e in data.episodes] == ["conv-26", "conv-44"]
    conv = data.episodes[0]
    # session_3 has a date but no turns key: it must not appear
    assert [u.id for u in conv.units] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"]
    assert (
        conv.units[2].text == "Look at this mural I found! [shares image: a photo of a rainbow mural on a brick wall]"
    )
    assert conv.units[2].name == "Caroline" and conv.units[2].session_id == "session_1"
    assert conv.units[3].timestamp == datetime(2023, 6, 27, 10, 37, tzinfo=UTC)
    # asked after the conversation: at its last turn (session_3 has a date but no turns)
    assert {question.asked_at for question in conv.questions} == {datetime(2023, 6, 27, 10, 37, tzinfo=UTC)}
    assert conv.units[0].document == "Caroline: Hey Mel! I went to a LGBTQ support group yesterday."
    q = {question.text: question for question in conv.questions}
    # two references in one string ("D1:2; D2:1") both count
    assert q["What activities does Melanie do?"].gold_units == ("D1:2", "D2:1")
    assert q["What activities does Melanie do?"].gold_sessions == ("session_1", "session_2")
    assert q["What might Caroline study?"].gold_units == ("D2:2",)
    assert q["What did Caroline's mural show?"].gold_units == ()
    adversarial = q["What did Melanie paint in the mural?"]
    assert adversarial.category == "5" and adversarial.answer == "a rainbow"
    assert data.malformed_evidence == ["D"]
    assert data.dangling_evidence == ["D9:9"]


def test_a_split_must_be_complete(locomo_mini: Path) -> None:
    with pytest.raises(ValueError, match="conv-30"):
        load_locomo(locomo_mini, "dev")
    with pytest.raises(ValueError, match="unknown split"):
        load_locomo(locomo_mini, "train")


def test_real_data_splits_and_quirks(real_locomo: Path) -> None:
    dev = load_locomo(real_locomo, "dev")
    test = load_locomo(real_locomo, "test")
    assert [e.id for e in dev.episodes] == list(SPLITS["dev"])
    assert [e.id for e in test.episodes] == list(SPLITS["test"])
    assert sum(len(e.questions) for e in dev.episodes) == 999
    assert sum(len(e.units) for e in dev.episodes) == 2760
    assert dev.malformed_evidence == ["D", "D:11:26"]
    assert dev.dangling_evidence == ["D10:19"]
    every = load_locomo(real_locomo, "all")
    assert len(every.episodes) == 10
    assert all(u.timestamp is not None for e in every.episodes for u in e.units)
    assert sum(not q.gold_units for e in every.episodes for q in e.questions) == 4
