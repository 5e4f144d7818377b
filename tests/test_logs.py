"""Log volume under repeated failures: a warning per refused request would flood the log."""

import logging
import time

import pytest

from app.logs import Throttled


def test_a_repeated_warning_is_logged_once_per_interval_with_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("loci.test.throttled")
    throttled = Throttled(logger, interval_s=0.3)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for _ in range(50):
            throttled.warning("database unavailable: %s", "OperationalError")
        assert len(caplog.records) == 1 and not hasattr(caplog.records[0], "repeats_held_back")
        time.sleep(0.35)
        throttled.warning("database unavailable: %s", "OperationalError")
    assert len(caplog.records) == 2
    assert caplog.records[1].repeats_held_back == 49  # type: ignore[attr-defined]
    assert caplog.records[1].getMessage() == "database unavailable: OperationalError"
