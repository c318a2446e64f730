"""Business dates are Asia/Shanghai dates with a configurable cut-off (clearing.md §1)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from acquiring.domain.errors import InvalidRecord
from acquiring.domain.rules import business_date


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_shanghai_midnight_is_16_00_utc() -> None:
    # 15:59:59 UTC is 23:59:59 in Shanghai: still the 1st; one second later it is the 2nd
    # there, while the UTC date is still the 1st.
    assert business_date(utc(2026, 3, 1, 15, 59, 59)) == date(2026, 3, 1)
    assert business_date(utc(2026, 3, 1, 16, 0, 0)) == date(2026, 3, 2)
    assert utc(2026, 3, 1, 16, 0, 0).date() == date(2026, 3, 1)


def test_early_utc_morning_is_the_same_shanghai_day() -> None:
    assert business_date(utc(2026, 3, 2, 0, 0, 0)) == date(2026, 3, 2)  # 08:00 Shanghai


def test_any_offset_is_converted() -> None:
    new_york = timezone(timedelta(hours=-5))
    # 2026-03-01 11:30 in New York = 16:30 UTC = 00:30 on the 2nd in Shanghai
    assert business_date(datetime(2026, 3, 1, 11, 30, tzinfo=new_york)) == date(2026, 3, 2)


def test_year_end() -> None:
    assert business_date(utc(2026, 12, 31, 15, 59, 59)) == date(2026, 12, 31)
    assert business_date(utc(2026, 12, 31, 16, 0, 0)) == date(2027, 1, 1)


def test_a_later_cut_off_ends_the_business_day_early() -> None:
    cutoff = time(23, 0)
    # 22:59:59 Shanghai on the 1st = 14:59:59 UTC: business date the 1st
    assert business_date(utc(2026, 3, 1, 14, 59, 59), cutoff) == date(2026, 3, 1)
    # 23:00:00 Shanghai on the 1st: already the 2nd
    assert business_date(utc(2026, 3, 1, 15, 0, 0), cutoff) == date(2026, 3, 2)
    # 00:30 Shanghai on the 2nd: the 2nd
    assert business_date(utc(2026, 3, 1, 16, 30), cutoff) == date(2026, 3, 2)
    # 22:59 on the 2nd: still the 2nd
    assert business_date(utc(2026, 3, 2, 14, 59), cutoff) == date(2026, 3, 2)


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="timezone-aware"):
        business_date(datetime(2026, 3, 1, 12, 0))


def test_cut_off_with_a_zone_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="cutoff"):
        business_date(utc(2026, 3, 1), time(23, 0, tzinfo=UTC))
