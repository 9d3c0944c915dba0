"""cronspec: cron fields read as Debian's cron reads them (the DST rules are tested in test_schedule)."""

from __future__ import annotations

from datetime import datetime

import pytest

from cronjobs.scheduling.cronspec import parse


def test_next_match_is_the_next_whole_minute_strictly_after():
    spec = parse("* * * * *")
    assert spec.next_match(datetime(2026, 6, 4, 10, 0, 30, 999)) == datetime(2026, 6, 4, 10, 1)
    assert spec.next_match(datetime(2026, 6, 4, 10, 1)) == datetime(2026, 6, 4, 10, 2)
    assert parse("0 0 29 2 *").next_match(datetime(2026, 3, 1)) == datetime(2028, 2, 29)


def test_a_step_of_1_is_every_value_and_a_step_of_0_or_text_is_refused():
    after = datetime(2026, 6, 4, 10, 0)
    assert [parse("*/1 * * * *").next_match(after), parse("10-20/1 * * * *").next_match(after)] == [
        datetime(2026, 6, 4, 10, 1), datetime(2026, 6, 4, 10, 10)]
    for step in ("0", "x", "", "٢"):
        with pytest.raises(ValueError, match=f"bad step {step!r} in the minute field"):
            parse(f"*/{step} * * * *")
