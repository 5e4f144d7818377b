"""Times the service can store and compute with: their UTC time within Python's years 1 to 9999.

An offset can carry a valid-looking time past them ("0001-01-01T00:00:00+14:00" is in year 0 in
UTC); storing, converting or comparing one failed with a 500 instead of a 422.
"""

from datetime import UTC, datetime


def within_calendar(moment: datetime) -> datetime:
    """`moment` unchanged, or ValueError if its UTC time falls outside the years 1 to 9999 (a naive
    time is read as UTC, so it always fits)."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("in UTC this time falls outside the years 1 to 9999") from None
    return moment
