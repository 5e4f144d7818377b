"""The periods questions name, and which event times fall in them."""

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

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
        ("Where was John between August 11 and August 15 2023?", date(2023, 8, 11), date(2023, 8, 15 + SLACK_DAYS)),
        ("What did we do from May 3 to 10, 2024?", date(2024, 5, 3), date(2024, 5, 10 + SLACK_DAYS)),
        ("Any news between March 30, 2023 and April 2, 2023?", date(2023, 3, 30), date(2023, 4, 2 + SLACK_DAYS)),
        ("What did she bake between June and August 2023?", date(2023, 6, 1), date(2023, 9, SLACK_DAYS)),
        ("Where did he ski from December to February 2023?", date(2022, 12, 1), date(2023, 3, SLACK_DAYS)),
        ("Who visited from December 5 to January 10, 2024?", date(2023, 12, 5), date(2024, 1, 10 + SLACK_DAYS)),
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
        "Where did Priya travel last week?",  # relative, and no moment to count from
        "What happened on February 30, 2023?",  # no such day
        "What has she painted since June?",  # from then on, not that month
        "Which marathon is Tom running?",
    ],
)
def test_questions_without_an_absolute_period_name_none(question: str) -> None:
    assert named_period(question) is None


ASKED = datetime(2024, 7, 17, 15, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("question", "first", "last"),
    [
        ("What did Tom cook yesterday?", date(2024, 7, 16), date(2024, 7, 17)),
        ("What did we eat last night?", date(2024, 7, 16), date(2024, 7, 17)),
        ("What did I read the day before yesterday?", date(2024, 7, 15), date(2024, 7, 17)),
        ("Who called today?", date(2024, 7, 17), date(2024, 7, 17)),
        ("What did I buy 3 days ago?", date(2024, 7, 14), date(2024, 7, 17)),
        ("Where was she two weeks ago?", date(2024, 6, 30), date(2024, 7, 6 + SLACK_DAYS)),
        ("What did he start a month ago?", date(2024, 6, 1), date(2024, 7, SLACK_DAYS)),
        ("Where did we move 5 years ago?", date(2019, 1, 1), date(2020, 1, SLACK_DAYS)),
        ("What have I fixed in the past 3 days?", date(2024, 7, 14), date(2024, 7, 17)),
        ("What did I learn in the past week?", date(2024, 7, 7), date(2024, 7, 17)),
        ("What did she say last Friday?", date(2024, 7, 12), date(2024, 7, 17)),
        ("What did I cook on Wednesday?", date(2024, 7, 10), date(2024, 7, 17)),  # today's weekday: a week ago
        ("Where did we hike last weekend?", date(2024, 7, 13), date(2024, 7, 17)),
        ("What did Tom cook last week?", date(2024, 7, 8), date(2024, 7, 17)),  # Monday to Sunday, then the slack
        ("What did I do this week?", date(2024, 7, 15), date(2024, 7, 17)),
        ("What happened last month?", date(2024, 6, 1), date(2024, 7, SLACK_DAYS)),
        ("What have I read this year?", date(2024, 1, 1), date(2024, 7, 17)),
        ("Where did we travel last year?", date(2023, 1, 1), date(2024, 1, SLACK_DAYS)),
        ("What did I note the week before August 3, 2023?", date(2023, 8, 3), date(2023, 8, 3 + SLACK_DAYS)),
    ],
)
def test_relative_periods_count_back_from_when_the_question_is_asked(question: str, first: date, last: date) -> None:
    """They end by the moment of asking; a named date wins over a relative phrase around it."""
    assert named_period(question, ASKED) == Period(first=first, last=last)


def test_the_weekend_just_ended_and_phrases_that_name_no_period() -> None:
    sunday = datetime(2024, 7, 21, 20, 0, tzinfo=UTC)
    assert named_period("What did we do last weekend?", sunday) == Period(
        first=date(2024, 7, 20), last=date(2024, 7, 21)
    )
    for question in ("What are we doing this weekend?", "How long ago was her birthday?", "What do I like?"):
        assert named_period(question, ASKED) is None


def test_days_are_those_of_the_askers_time_zone() -> None:
    """At 1 a.m. in Denver (08:00 UTC on the 17th), "yesterday" is Denver's 16th: an event at 8 p.m.
    there (03:00 UTC on the 17th) is in it, though UTC calls that day the 17th."""
    denver = timezone(timedelta(hours=-7))
    period = named_period("What did I cook yesterday?", datetime(2024, 7, 17, 1, 0, tzinfo=denver))
    assert period == Period(first=date(2024, 7, 16), last=date(2024, 7, 17), zone=denver)
    evening = datetime(2024, 7, 16, 20, 0, tzinfo=denver)
    times = np.array([event_seconds(evening), event_seconds(datetime(2024, 7, 15, 23, 30, tzinfo=denver))])
    assert period.holds(times, np.array([7, 7])).tolist() == [True, False]
    on_a_date = named_period("What happened on July 16, 2024?", datetime(2024, 7, 20, tzinfo=denver))
    assert on_a_date is not None and on_a_date.zone == denver  # named dates are the asker's days too


def test_a_named_zone_gives_each_day_its_own_offset() -> None:
    """Denver moved to daylight time on 8 March 2026 (UTC-7 to UTC-6). Asked on the 10th, "last
    week" starts at midnight on 2 March, UTC-7, though the moment of asking is at UTC-6: read with
    that offset alone, the week would take in the last half hour of 1 March. And the 8th lasted 23
    hours: 00:30 on the 9th is not in it."""
    denver = ZoneInfo("America/Denver")
    asked = datetime(2026, 3, 10, 12, 0, tzinfo=denver)
    period = named_period("What did I cook last week?", asked)
    assert period == Period(first=date(2026, 3, 2), last=date(2026, 3, 10), zone=denver)
    late_on_the_1st, early_on_the_2nd = datetime(2026, 3, 2, 6, 30, tzinfo=UTC), datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
    times = np.array([event_seconds(late_on_the_1st), event_seconds(early_on_the_2nd)])
    assert period.holds(times, np.array([3, 3])).tolist() == [False, True]
    by_offset = named_period("What did I cook last week?", asked.astimezone(timezone(timedelta(hours=-6))))
    assert by_offset is not None and by_offset.holds(times, np.array([3, 3])).tolist() == [True, True]

    eighth = Period(first=date(2026, 3, 8), last=date(2026, 3, 8), zone=denver)
    late_on_the_8th, early_on_the_9th = (
        datetime(2026, 3, 8, 23, 30, tzinfo=denver),
        datetime(2026, 3, 9, 0, 30, tzinfo=denver),
    )
    times = np.array([event_seconds(late_on_the_8th), event_seconds(early_on_the_9th)])
    assert eighth.holds(times, np.array([3, 3])).tolist() == [True, False]


def test_a_month_alone_is_the_askers_month_in_every_year() -> None:
    """Asked in Los Angeles, "in June" holds 8 p.m. on 30 June there (3 a.m. on 1 July in UTC, the
    month the index keeps) in any year, and not 8 p.m. on 31 May (1 June in UTC) or an undated memory."""
    los_angeles = ZoneInfo("America/Los_Angeles")
    period = named_period("What did we grill in June?", datetime(2024, 8, 1, 9, 0, tzinfo=los_angeles))
    assert period == Period(month=6, zone=los_angeles)
    moments = [
        datetime(2021, 6, 30, 20, 0, tzinfo=los_angeles),
        datetime(2024, 6, 30, 20, 0, tzinfo=los_angeles),
        datetime(2024, 5, 31, 20, 0, tzinfo=los_angeles),
        datetime(2024, 6, 1, 0, 30, tzinfo=los_angeles),
        None,
    ]
    times = np.array([event_seconds(moment) for moment in moments])
    months = np.array([event_month(moment) for moment in moments])
    assert months.tolist() == [7, 7, 6, 6, 0]  # in UTC
    assert period.holds(times, months).tolist() == [True, True, False, True, False]
    assert period.holds(times[:0], months[:0]).tolist() == []


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
