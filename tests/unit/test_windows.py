"""Send windows: `next_open` is a pure function of (window, zones, now)."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from twilio_jobs.windows import SendWindow, Window, is_open, next_open, recipient_zones


def win(start: str, end: str, zones: tuple[str, ...], days: list[str] | None = None) -> Window:
    body: dict[str, object] = {"start": start, "end": end}
    if days is not None:
        body["days"] = days
    return Window.of(SendWindow.model_validate(body), zones)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NY = ("America/New_York",)


def test_open_now_is_now() -> None:
    w = win("08:00", "21:00", NY)
    now = utc("2026-07-01T16:00:00")  # 12:00 in New York
    assert next_open(w, now) == now


def test_before_start_waits_for_start_and_end_is_exclusive() -> None:
    w = win("08:00", "21:00", NY)
    assert next_open(w, utc("2026-07-01T11:00:00")) == utc("2026-07-01T12:00:00")  # 08:00 EDT
    # 21:00 EDT is closed: the next start is tomorrow 08:00.
    assert next_open(w, utc("2026-07-02T01:00:00")) == utc("2026-07-02T12:00:00")


def test_days_skip_to_the_next_listed_day() -> None:
    w = win("09:00", "17:00", ("UTC",), days=["mon", "wed"])
    # 2026-07-01 is a Wednesday; after its window, the next is Monday 6 July.
    assert next_open(w, utc("2026-07-01T18:00:00")) == utc("2026-07-06T09:00:00")
    assert next_open(w, utc("2026-07-02T08:00:00")) == utc("2026-07-06T09:00:00")


def test_overnight_window_belongs_to_the_day_it_opens() -> None:
    w = win("21:00", "08:00", ("UTC",), days=["fri"])
    friday_night = utc("2026-07-03T23:00:00")
    saturday_morning = utc("2026-07-04T07:59:00")
    assert is_open(w, friday_night) and is_open(w, saturday_morning)
    assert not is_open(w, utc("2026-07-04T08:00:00"))
    # Saturday night is not Friday's window: next Friday 21:00.
    assert next_open(w, utc("2026-07-04T22:00:00")) == utc("2026-07-10T21:00:00")
    # Thursday 23:00 waits for Friday 21:00 (Thursday is not listed).
    assert next_open(w, utc("2026-07-02T23:00:00")) == utc("2026-07-03T21:00:00")


def test_dst_transitions_keep_local_wall_time() -> None:
    w = win("08:00", "21:00", NY)
    # Spring forward on Sunday 8 March 2026: 08:00 is 13:00 UTC before, 12:00 UTC on the day.
    assert next_open(w, utc("2026-03-07T02:00:00")) == utc("2026-03-07T13:00:00")
    assert next_open(w, utc("2026-03-08T02:00:00")) == utc("2026-03-08T12:00:00")
    # Fall back on Sunday 1 November 2026: 08:00 EST is 13:00 UTC.
    assert next_open(w, utc("2026-11-01T03:00:00")) == utc("2026-11-01T13:00:00")


def test_start_in_a_skipped_hour_is_never_early() -> None:
    w = win("02:30", "05:00", NY)
    at = next_open(w, utc("2026-03-08T05:00:00"))  # 00:00 EST on the spring-forward day
    assert at is not None and at >= utc("2026-03-08T07:00:00")  # 03:00 EDT, the change
    assert is_open(w, at)


def test_several_zones_allow_only_the_intersection() -> None:
    w = win("08:00", "21:00", ("America/New_York", "America/Los_Angeles"))
    # 08:00 in New York is 05:00 in Los Angeles: wait for 08:00 there (11:00 in New York).
    assert next_open(w, utc("2026-07-01T12:00:00")) == utc("2026-07-01T15:00:00")
    # 21:00 in New York closes it, although Los Angeles is still at 18:00.
    assert not is_open(w, utc("2026-07-02T01:30:00"))


def test_zones_whose_windows_never_meet_have_no_opening() -> None:
    w = win("08:00", "09:00", ("Asia/Tokyo", "America/New_York"))
    assert next_open(w, utc("2026-07-01T00:00:00")) is None


def test_recipient_zones_from_the_number() -> None:
    assert recipient_zones("+12125550100") == ("America/New_York",)
    assert recipient_zones("+14155550100") == ("America/Los_Angeles",)
    assert recipient_zones("client:alice") == ()


def test_round_trip_through_the_job_record() -> None:
    w = win("21:00", "08:00", NY, days=["fri", "mon"])
    assert Window.loads(w.dumps()) == w
    assert Window.loads("") is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": "8am", "end": "21:00"}, "start"),
        ({"start": "08:00", "end": "24:00"}, "end"),
        ({"start": "08:00", "end": "08:00"}, "end"),
        ({"start": "08:00", "end": "21:00", "days": []}, "days"),
        ({"start": "08:00", "end": "21:00", "days": ["mon", "funday"]}, "days"),
        ({"start": "08:00", "end": "21:00", "timezone": "Mars/Olympus"}, "timezone"),
        ({"start": "08:00", "end": "21:00", "timezone": "../etc/passwd"}, "timezone"),
    ],
)
def test_malformed_windows_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SendWindow.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field
