"""runtime.rfc3339: Go's RFC3339Nano formatting and parsing (no root needed)."""

import calendar
import re

import pytest

from runtime import rfc3339


def test_format_drops_trailing_zeros_as_go_does():
    assert rfc3339.format_nano(0) == "1970-01-01T00:00:00Z"
    assert rfc3339.format_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339.format_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339.format_nano(1_700_000_000_000_000_001) == "2023-11-14T22:13:20.000000001Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", rfc3339.format_nano())


def test_fixed_always_has_nine_fraction_digits():
    assert rfc3339.format_nano(0, fixed=True) == "1970-01-01T00:00:00.000000000Z"
    assert rfc3339.format_nano(1_700_000_000_120_000_000, fixed=True) == "2023-11-14T22:13:20.120000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", rfc3339.format_nano(fixed=True))


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789,
                                951_782_400_500_000_000,  # 2000-02-29 (a leap day)
                                4_102_444_800_000_000_000,  # 2100-01-01
                                253_402_300_799_999_999_999])  # 9999-12-31T23:59:59.999999999
def test_round_trip(ns):
    assert rfc3339.parse(rfc3339.format_nano(ns)) == ns
    assert rfc3339.parse(rfc3339.format_nano(ns, fixed=True)) == ns


def test_parse_agrees_with_calendar_for_every_month_of_a_leap_and_a_common_year():
    for year in (2023, 2024):
        for month in range(1, 13):
            want = calendar.timegm((year, month, 28, 13, 14, 15)) * 1_000_000_000
            assert rfc3339.parse(f"{year}-{month:02d}-28T13:14:15Z") == want


def test_parse_offsets_fractions_and_separators():
    base = rfc3339.parse("2026-11-29T11:25:01Z")
    assert rfc3339.parse("2026-11-29T13:25:01+02:00") == base
    assert rfc3339.parse("2026-11-29T06:55:01-04:30") == base
    assert rfc3339.parse("2026-11-29t11:25:01z") == base
    assert rfc3339.parse("2026-11-29 11:25:01Z") == base
    assert rfc3339.parse(" 2026-11-29T11:25:01.5Z\n") == base + 500_000_000
    assert rfc3339.parse("2026-11-29T11:25:01.1234567891234Z") == base + 123_456_789  # past 9: ignored


def test_go_zero_time_is_zero():
    assert rfc3339.parse(rfc3339.ZERO_TIME) == 0
    assert rfc3339.ZERO_TIME == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-11-29", "2026-11-29T11:25:01",  # no offset
                                 "2026-11-29T11:25:01+0200", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
                                 "2026-11-32T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T11:60:00Z",
                                 "2026-11-29T11:25:01.Z", "2026/11/29T11:25:01Z", "2026-11-29T11:25:01+25:00",
                                 "２０２６-11-29T11:25:01Z", None, 1700000000])
def test_parse_refuses_what_is_not_rfc3339(bad):
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        rfc3339.parse(bad)
