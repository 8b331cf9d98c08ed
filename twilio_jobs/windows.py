"""Quiet hours: a job's send window (`sendWindow`, or the server's default window).

    {"start": "08:00", "end": "21:00", "days": ["mon", "tue", ...], "timezone": "recipient"}

A window is open from `start` (inclusive) to `end` (exclusive), local wall time, on the listed
days; `end` before `start` runs overnight, and then the day is the day it opens ("fri" 21:00 to
08:00 is Friday night into Saturday morning). `timezone` is an IANA name or `"recipient"`: the
zones phonenumbers' timezone data gives for the number; where a number maps to several zones,
only instants open in every one of them are allowed (the intersection).

The zones are resolved when a job is accepted and stored with the window on the job record
(`window` field, `Window.dumps`), so a worker checks it with zoneinfo alone, right before it
sends. `next_open(window, zones, now)` is the one computation: a pure function of its
arguments (no clock), which the submit path, the campaign dry run and the worker all call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RECIPIENT = "recipient"
HORIZON_DAYS = 15
"""How far ahead an opening is looked for (a week covers any one zone; several zones whose
windows never meet have none)."""

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")


class SendWindow(BaseModel):
    """When a job may be sent, in the recipient's time zone (`"recipient"`) or a named one."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(examples=["08:00"])
    end: str = Field(examples=["21:00"])
    days: list[str] = Field(default_factory=lambda: list(DAYS), min_length=1, max_length=7)
    timezone: str = RECIPIENT

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be a time HH:MM (00:00 to 23:59), or HH:MM:SS")
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [d.lower() for d in value]
        for day in days:
            if day not in DAYS:
                raise ValueError(f"unknown day '{day}' (one of {', '.join(DAYS)})")
        return sorted(set(days), key=DAYS.index)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value != RECIPIENT and zone(value) is None:
            raise ValueError(f"unknown time zone '{value}' (an IANA name, or 'recipient')")
        return value

    @field_validator("end")
    @classmethod
    def _not_empty(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("start") == value:
            raise ValueError("must differ from start (an empty window never opens)")
        return value


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo | None:
    if not name or name.startswith("/") or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class Window:
    """A window with its zones resolved: what a job record stores and a worker checks."""

    start: time
    end: time
    days: frozenset[int]  # weekday numbers, Monday 0
    zones: tuple[str, ...]

    @classmethod
    def of(cls, window: SendWindow, zones: Sequence[str]) -> Window:
        return cls(
            start=time.fromisoformat(window.start),
            end=time.fromisoformat(window.end),
            days=frozenset(DAYS.index(d) for d in window.days),
            zones=tuple(zones),
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "start": _hhmm(self.start),
                "end": _hhmm(self.end),
                "days": [DAYS[d] for d in sorted(self.days)],
                "zones": list(self.zones),
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> Window | None:
        """The window of a job record (None: no window, or one this code cannot read)."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            return cls(
                start=time.fromisoformat(raw["start"]),
                end=time.fromisoformat(raw["end"]),
                days=frozenset(DAYS.index(d) for d in raw["days"]),
                zones=tuple(str(z) for z in raw["zones"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _hhmm(at: time) -> str:
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")


def zones_for(window: SendWindow, to: str) -> tuple[str, ...]:
    """The zones a window is read in for recipient `to`: the named zone, or the number's zones
    from phonenumbers' timezone data (empty when it has none: not a phone number, or unknown)."""
    if window.timezone != RECIPIENT:
        return (window.timezone,)
    return recipient_zones(to)


@lru_cache(maxsize=4096)
def recipient_zones(to: str) -> tuple[str, ...]:
    import phonenumbers
    from phonenumbers import timezone as pn_timezone

    number = to.split(":", 1)[1] if to.startswith("whatsapp:") else to
    if not number.startswith("+"):
        return ()
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    names = pn_timezone.time_zones_for_number(parsed)
    return tuple(sorted(n for n in names if zone(n) is not None))


def _open_in(window: Window, tz: ZoneInfo, at: datetime) -> bool:
    local = at.astimezone(tz)
    now = local.time().replace(tzinfo=None)
    today = local.weekday()
    if window.start < window.end:
        return today in window.days and window.start <= now < window.end
    # Overnight: opened today, or opened yesterday and not yet closed.
    if now >= window.start and today in window.days:
        return True
    return now < window.end and (today - 1) % 7 in window.days


def is_open(window: Window, at: datetime) -> bool:
    """Whether `at` (an aware datetime) falls in the window in every one of its zones."""
    return all(_open_in(window, _zone_or_utc(z), at) for z in window.zones)


def _zone_or_utc(name: str) -> ZoneInfo:
    return zone(name) or ZoneInfo("UTC")


def _openings(window: Window, tz: ZoneInfo, now: datetime) -> list[datetime]:
    """Every instant the window opens in `tz` from a day before `now` to the horizon. A start
    in a skipped hour (a DST gap) opens at that wall time read with the offset before the
    change: up to an hour late, never early."""
    first: date = now.astimezone(tz).date() - timedelta(days=1)
    found = []
    for offset in range(HORIZON_DAYS + 1):
        day = first + timedelta(days=offset)
        if day.weekday() in window.days:
            local = datetime.combine(day, window.start, tzinfo=tz)
            found.append(local.astimezone(UTC))
    return found


def next_open(window: Window, now: datetime) -> datetime | None:
    """The first instant at or after `now` that falls in the window in all its zones: `now`
    itself when it is open now; None when no such instant comes within the horizon (zones
    whose windows never overlap). Pure: the clock is the caller's."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if not window.zones or is_open(window, now):
        return now
    candidates = sorted(
        {
            at
            for name in window.zones
            for at in _openings(window, _zone_or_utc(name), now)
            if at > now
        }
    )
    for at in candidates:
        if is_open(window, at):
            return at
    return None


class WindowError(ValueError):
    """No instant to send at: the recipient's zones are unknown, or their windows never meet."""


def resolve(window: SendWindow, to: str, earliest: datetime) -> tuple[Window, datetime]:
    """The window of a job to `to` with its zones, and the first instant from `earliest` it
    may be sent at; WindowError when there is none."""
    zones = zones_for(window, to)
    if not zones:
        raise WindowError(
            f"the time zone of {to} is unknown to phonenumbers; name an IANA time zone"
        )
    resolved = Window.of(window, zones)
    at = next_open(resolved, earliest)
    if at is None:
        raise WindowError(
            f"no time is inside the window in all of {to}'s time zones "
            f"({', '.join(zones)}); name an IANA time zone"
        )
    return resolved, at


__all__ = [
    "DAYS",
    "WindowError",
    "resolve",
    "RECIPIENT",
    "SendWindow",
    "Window",
    "is_open",
    "next_open",
    "recipient_zones",
    "zone",
    "zones_for",
]
