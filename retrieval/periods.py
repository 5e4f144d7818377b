"""Time in questions and memories: the calendar period a question names ("on 13 October, 2023",
"in May 2023", "in June"), for the time view (memories whose event time falls in it); and whether a
question asks when and a memory's text tells when, for the when view.

Questions about an agent's past often say when ("What did Maria donate in December 2023?"), and
the turn that answers rarely repeats the date: the date is the session's, in `event_at`. Relative
periods ("last week", "yesterday", "3 months ago") count back from the moment the question is
asked (a search's `asked_at`, by default the time of the request); a named date wins over them
("the week before August 3, 2023" is about that date).

An event is often told some days after it happened ("I had dinner with my mom yesterday"), so a
named day or month also holds the SLACK_DAYS after it.
"""

import re
from dataclasses import dataclass, replace
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, time, timedelta, tzinfo

import numpy as np

SLACK_DAYS = 7

_MONTHS = "january february march april may june july august september october november december".split()
_MONTH = r"(" + "|".join(_MONTHS) + r")"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"((?:19|20)\d\d)"
# A range first ("between August 11 and August 15, 2023", "from June to August 2023"): its end alone
# would read as a date. The first end may leave out the month or year the second one gives.
_TO = r"\s+(?:and|to|until|till|through|-)\s+"
_DAY_RANGE = re.compile(
    rf"\b(?:between|from)\s+{_MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?{_TO}(?:{_MONTH}\s+)?{_DAY},?\s+{_YEAR}\b",
    re.IGNORECASE,
)
_MONTH_RANGE = re.compile(rf"\b(?:between|from)\s+{_MONTH}(?:\s+{_YEAR})?{_TO}{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE)
# Most specific first: a date's month and year would also match the month's pattern.
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.IGNORECASE)
_DAY_MONTH_YEAR = re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE)
_ISO_DATE = re.compile(rf"\b{_YEAR}-(\d\d)-(\d\d)\b")
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.IGNORECASE)
# A month alone only after a word that makes it a time ("may" is also a verb); not after "since",
# which names everything from then on.
_MONTH_ALONE = re.compile(rf"\b(?:in|during|early|late|mid|of)\s+{_MONTH}\b", re.IGNORECASE)
_YEAR_ALONE = re.compile(rf"\b(?:in|during|of)\s+{_YEAR}\b", re.IGNORECASE)

_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_COUNT = r"(\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")"
_UNIT = r"(day|week|month|year)s?"
_DAY_BEFORE_YESTERDAY = re.compile(r"\bday\s+before\s+yesterday\b", re.IGNORECASE)
_YESTERDAY_TODAY = re.compile(r"\b(yesterday|last\s+night|today|tonight|this\s+morning)\b", re.IGNORECASE)
_AGO = re.compile(rf"\b{_COUNT}\s+{_UNIT}\s+ago\b", re.IGNORECASE)
_PAST_SPAN = re.compile(rf"\b(?:past|last)\s+{_COUNT}\s+{_UNIT}\b", re.IGNORECASE)
_LAST_WEEKDAY = re.compile(r"\b(?:last|on)\s+(" + "|".join(_WEEKDAYS) + r")\b", re.IGNORECASE)
# Not "this weekend": on a weekday it is still to come.
_LAST_OR_THIS = re.compile(r"\b(?:last\s+(weekend)|(last|this)\s+(week|month|year))\b", re.IGNORECASE)
_PAST_UNIT = re.compile(r"\bpast\s+(day|week|month|year)\b", re.IGNORECASE)  # "the past month": the past 1 month


@dataclass(frozen=True)
class Period:
    """Days from `first` to `last` (inclusive), or with `month` set, that month of every year, in
    the asker's time zone (`zone`, that of the question's `asked_at`: an IANA zone gives each day
    its own offset, so a week that crosses a daylight-saving change still starts at local midnight)."""

    first: date | None = None
    last: date | None = None
    month: int | None = None
    zone: tzinfo = UTC

    def holds(self, event_times: np.ndarray, event_months: np.ndarray) -> np.ndarray:
        """Which memories' events fall in the period, given their times (`event_seconds`) and
        calendar months (`event_month`): plain comparisons, with no date arithmetic per memory."""
        if self.month is not None:
            if self.zone.utcoffset(None) == timedelta(0):  # UTC: the months the index keeps
                return event_months == self.month
            # An offset of under a day moves an event into the month only from a UTC month beside it:
            # only those are placed (over a million memories 7 ms instead of 26).
            month = self.month
            near = np.flatnonzero(
                (event_months == month) | (event_months == month % 12 + 1) | (event_months == (month - 2) % 12 + 1)
            )
            held = np.zeros(len(event_times), dtype=bool)
            held[near] = self._in_local_month(event_times[near])
            return held
        assert self.first is not None and self.last is not None
        after = self.last + timedelta(days=1)  # its midnight, not the last's + 24 h: a day can have 23 or 25
        start = datetime.combine(self.first, time(), self.zone).timestamp()
        end = datetime.combine(after, time(), self.zone).timestamp()
        return (event_times >= start) & (event_times < end)

    def _in_local_month(self, event_times: np.ndarray) -> np.ndarray:
        """Whether each time falls in the month in the asker's zone, in any year: the month's
        bounds in each year the times span, each at its own offset, then one search per time."""
        assert self.month is not None
        if not len(event_times):
            return np.zeros(0, dtype=bool)
        first, last = (datetime.fromtimestamp(t, UTC).year for t in (event_times.min(), event_times.max()))
        years = range(max(first - 1, MINYEAR), min(last + 1, MAXYEAR - 1) + 1)  # each month's end too is a date
        months = [date(year, self.month, 1) for year in years]
        starts = np.array([datetime.combine(m, time(), self.zone).timestamp() for m in months])
        ends = np.array([datetime.combine(_next_month(m), time(), self.zone).timestamp() for m in months])
        year = np.searchsorted(starts, event_times, side="right") - 1
        return (year >= 0) & (event_times < ends[np.maximum(year, 0)])


def named_period(question: str, asked_at: datetime | None = None) -> Period | None:
    """The first period the question names, most specific reading first, then (given `asked_at`)
    a period relative to that moment; None if it names none (or names an impossible date, or one
    outside the calendar's years 1 to 9999). Days are those of `asked_at`'s time zone: "yesterday"
    at 1 a.m. in Denver is not UTC's yesterday."""
    try:
        absolute = _read(question)
        if asked_at is None:
            return absolute
        local = asked_at if asked_at.tzinfo is not None else asked_at.replace(tzinfo=UTC)
        period = absolute or _relative(_PAST_UNIT.sub(r"past 1 \1", question), local.date())
    except (ValueError, OverflowError):  # "February 30, 2023"; "999 years ago" asked in the year 5
        return None
    return None if period is None else replace(period, zone=local.tzinfo or UTC)


def _read(question: str) -> Period | None:
    if match := _DAY_RANGE.search(question):
        last = date(int(match[6]), _month(match[4] or match[1]), int(match[5]))
        return _days(_range_start(_month(match[1]), int(match[2]), match[3], last), last)
    if match := _MONTH_RANGE.search(question):
        last_month = date(int(match[4]), _month(match[3]), 1)
        return _days(
            _range_start(_month(match[1]), 1, match[2], last_month), _next_month(last_month) - timedelta(days=1)
        )
    if match := _MONTH_DAY_YEAR.search(question):
        return _days(date(int(match[3]), _month(match[1]), int(match[2])))
    if match := _DAY_MONTH_YEAR.search(question):
        return _days(date(int(match[3]), _month(match[2]), int(match[1])))
    if match := _ISO_DATE.search(question):
        return _days(date(int(match[1]), int(match[2]), int(match[3])))
    if match := _MONTH_YEAR.search(question):
        first = date(int(match[2]), _month(match[1]), 1)
        return _days(first, _next_month(first) - timedelta(days=1))
    if match := _MONTH_ALONE.search(question):
        return Period(month=_month(match[1]))
    if match := _YEAR_ALONE.search(question):
        return _days(date(int(match[1]), 1, 1), date(int(match[1]), 12, 31))
    return None


def _relative(question: str, today: date) -> Period | None:
    """A period counted back from `today`; it ends no later than today, since what is remembered
    has happened (with the slack of `_days` otherwise)."""
    days: tuple[date, date] | None = None
    if _DAY_BEFORE_YESTERDAY.search(question):
        days = (today - timedelta(days=2), today - timedelta(days=2))
    elif match := _YESTERDAY_TODAY.search(question):
        day = today - timedelta(days=1) if match[1].lower().startswith(("yesterday", "last")) else today
        days = (day, day)
    elif match := _AGO.search(question):
        days = _units_back(today, _count(match[1]), match[2].lower())
    elif match := _PAST_SPAN.search(question):
        first, _ = _units_back(today, _count(match[1]), match[2].lower())
        days = (first, today)
    elif match := _LAST_WEEKDAY.search(question):
        back = (today.weekday() - _WEEKDAYS.index(match[1].lower()) - 1) % 7 + 1  # 1-7 days: strictly before today
        days = (today - timedelta(days=back), today - timedelta(days=back))
    elif match := _LAST_OR_THIS.search(question):
        days = _calendar(today, (match[1] or match[3]).lower(), this=(match[2] or "").lower() == "this")
    if days is None:
        return None
    return Period(first=days[0], last=min(days[1] + timedelta(days=SLACK_DAYS), today))


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word.lower()]


def _units_back(today: date, count: int, unit: str) -> tuple[date, date]:
    """The day, week, month or year `count` units before today ("3 weeks ago": that week)."""
    if unit == "day":
        day = today - timedelta(days=count)
        return day, day
    if unit == "week":
        day = today - timedelta(weeks=count)
        return day - timedelta(days=3), day + timedelta(days=3)
    if unit == "month":
        first = date(today.year, today.month, 1)
        for _ in range(count):
            first = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
        return first, _next_month(first) - timedelta(days=1)
    return date(today.year - count, 1, 1), date(today.year - count, 12, 31)


def _calendar(today: date, unit: str, this: bool) -> tuple[date, date]:
    """The last weekend, or this or the last calendar week (Monday to Sunday), month or year."""
    monday = today - timedelta(days=today.weekday())
    if unit == "weekend":  # on a Sunday, the one ending today
        saturday = monday + timedelta(days=5) if today.weekday() == 6 else monday - timedelta(days=2)
        return saturday, saturday + timedelta(days=1)
    if unit == "week":
        return (monday, today) if this else (monday - timedelta(weeks=1), monday - timedelta(days=1))
    if not this:  # last month or year: the one before today's, as "1 month ago" reads it
        return _units_back(today, 1, unit)
    return (date(today.year, today.month, 1) if unit == "month" else date(today.year, 1, 1)), today


def _range_start(month: int, day: int, year: str | None, last: date) -> date:
    """A range's first day; without its own year, the last one before `last` ("from December to
    February 2023" starts in December 2022)."""
    if year is not None:
        return date(int(year), month, day)
    first = date(last.year, month, day)
    return first if first <= last else date(last.year - 1, month, day)


_ASKS_WHEN = re.compile(
    r"^\W*(?:when\b|what\s+(?:year|month|day|date|time)\b|how\s+long\s+ago\b|since\s+when\b)", re.IGNORECASE
)
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_SEASON = r"(?:spring|summer|fall|autumn|winter)"
# "may" is left out of the months: as a verb it is far more common in what people say.
_MONTH_NOT_MAY = r"(?:" + "|".join(name for name in _MONTHS if name != "may") + r")"
_TELLS_WHEN = re.compile(
    r"\b(?:yesterday|today|tonight|tomorrow|ago|recently|lately|earlier|"
    rf"(?:last|next|this|past)\s+(?:week|weekend|month|year|night|morning|{_WEEKDAY}|{_SEASON})|"
    rf"{_MONTH_NOT_MAY}|May\s+\d|(?:19|20)\d\d|{_WEEKDAY}|\d+\s+(?:days?|weeks?|months?|years?))\b",
    re.IGNORECASE,
)


def asks_when(question: str) -> bool:
    """Whether the question asks for a time ("When did...", "What year...", "How long ago...")."""
    return _ASKS_WHEN.search(question) is not None


def tells_when(text: str) -> bool:
    """Whether the text says when something happened: a relative day or week ("yesterday", "last
    Friday", "3 years ago"), a month, a year: what a question asking when is most often answered by
    (docs/retrieval.md has how often)."""
    return _TELLS_WHEN.search(text) is not None


def _days(first: date, last: date | None = None) -> Period:
    return Period(first=first, last=(last or first) + timedelta(days=SLACK_DAYS))


def _month(name: str) -> int:
    return _MONTHS.index(name.lower()) + 1


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def event_seconds(moment: datetime | None) -> float:
    """A memory's event time as the index keeps it: Unix seconds, 0 when it has none."""
    if moment is None:
        return 0.0
    return _utc(moment).timestamp()


def event_month(moment: datetime | None) -> int:
    """A memory's event month (1-12, in UTC) as the index keeps it: 0 when it has none."""
    return 0 if moment is None else _utc(moment).month


def _utc(moment: datetime) -> datetime:
    """Naive times are read as UTC, as Postgres stores them in a timestamptz column."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
