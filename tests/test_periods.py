"""The periods questions name, and which event times fall in them."""

from datetime import UTC, date, datetime

import numpy as np
import pytest

from retrieval.periods import SLACK_DAYS, Period, asks_when, event_month, event_seconds, named_period, tells_when


@pytest.mark.parametrize(
    ("question", "first", "last"),
    [
        ("What did Maria paint on October 13, 2023?", date(2023, 10, 13), date(2023, 10, 13 + SLACK_DAYS)),
        ("Who did she meet on 3rd May, 2023?", date(2023, 5, 3), date(2023, 5, 3 + SLACK_DAYS)),
        ("What happened on the 1 of February 2023?", date(2023, 2, 1), date(2023, 2, 1 + SLACK_DAYS)),
        ("Any news from 2024-02-28?", date(2024, 2, 28), date(2024, 3, 6)),
        ("What class did Maria start in December 2023?", date(2023, 12, 1), date(2024, 1, SLACK_DAYS)),
        ("What did he buy in February, 2024?", date(2024, 2, 1), date(2024, 3, SLACK_DAYS)),
        ("How many trips in 2023?", date(2023, 1, 1), date(2024, 1, SLACK_DAYS)),
    ],
)
def test_dated_periods_are_days_with_the_slack_after(question: str, first: date, last: date) -> None:
    assert named_period(question) == Period(first=first, last=last)


def test_a_month_alone_is_that_month_of_any_year() -> None:
    assert named_period("When did Melanie go camping in June?") == Period(month=6)
    assert named_period("What did they do during August?") == Period(month=8)


@pytest.mark.parametrize(
    "question",
    [
        "What may Tom play at the recital?",  # a verb, not the month
        "Where did Priya travel last week?",  # relative: the search has no moment to count from
        "What happened on February 30, 2023?",  # no such day
        "What has she painted since June?",  # from then on, not that month
        "Which marathon is Tom running?",
    ],
)
def test_questions_without_an_absolute_period_name_none(question: str) -> None:
    assert named_period(question) is None


def test_holds_the_days_of_the_period_and_nothing_undated() -> None:
    moments = [
        datetime(2023, 5, 2, 23, 59, tzinfo=UTC),  # the day before
        datetime(2023, 5, 3, 0, 0, tzinfo=UTC),
        datetime(2023, 5, 3 + SLACK_DAYS, 23, 59, tzinfo=UTC),  # told a week later
        datetime(2023, 5, 4 + SLACK_DAYS, 0, 0, tzinfo=UTC),
        datetime(2022, 5, 3, 12, 0),  # naive: read as UTC
        None,
    ]
    times = np.array([event_seconds(moment) for moment in moments])
    months = np.array([event_month(moment) for moment in moments])
    period = named_period("on May 3, 2023")
    assert period is not None
    assert period.holds(times, months).tolist() == [False, True, True, False, False, False]
    assert Period(month=5).holds(times, months).tolist() == [True, True, True, True, True, False]
    assert Period(month=1).holds(times, months).tolist() == [False] * 6


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("When did Melanie paint a sunrise?", True),
        ("What year did Jon open his studio?", True),
        ("How long ago was the trip?", True),
        ("What did Melanie paint?", False),
        ("Where does Tom go when it rains?", False),  # "when" not as the question
    ],
)
def test_asks_when(question: str, asks: bool) -> None:
    assert asks_when(question) is asks


@pytest.mark.parametrize(
    ("text", "tells"),
    [
        ("I adopted a puppy yesterday!", True),
        ("We went hiking last weekend.", True),
        ("I've had them for 3 years now.", True),
        ("The festival is in August.", True),
        ("It opened on May 3 and in 2022 it moved.", True),
        ("See you on Friday!", True),
        ("I may adopt a puppy.", False),  # the verb, not the month
        ("Dance is my go-to for stress relief.", False),
    ],
)
def test_tells_when(text: str, tells: bool) -> None:
    assert tells_when(text) is tells
