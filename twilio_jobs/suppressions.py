"""An account's suppression list: recipients who must not be sent to, per scope.

One hash per account, `keys.suppressed(account)`, field `<scope> <to>`, value a JSON object
(`reason`, `at`, and for 21610 `code` and `jobId`). A scope is a sender (`from` number), a
Messaging Service (`MG...`) or the whole account (`*`). Reasons: `21610` (Twilio refused a send:
the worker records it, `twilio_jobs.gates`), `keyword` (an inbound STOP,
`twilio_jobs.inbound`), `manual` (added through the API) and `import` (a CSV import).

The gate (`lua/gates.lua`) ends every job whose recipient is suppressed for its `from` number,
its Messaging Service or the account `suppressed`, without calling Twilio. Entries are kept
until lifted (`DELETE /api/suppressions`, or an inbound START).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from redis import Redis

from twilio_jobs import keys
from twilio_jobs.errors import InvalidRequest
from twilio_jobs.schemas import Suppression, SuppressionPage
from twilio_jobs.store import now_iso

ACCOUNT_SCOPE = "*"
REASONS = ("21610", "keyword", "manual", "import")
CSV_FIELDS = ("to", "sender", "reason", "at")
# A recipient or sender address: E.164, a short code, or a channel address (whatsapp:+1...).
ADDRESS = re.compile(r"[A-Za-z0-9+][A-Za-z0-9:+._@-]{0,63}")
IMPORT_MAX_ROWS = 100_000
STAMP = re.compile(r"[0-9][0-9T:.+Z-]{0,39}")


def reason_of(entry: dict[str, object]) -> str:
    """The entry's reason; entries written before reasons were kept are all 21610."""
    reason = entry.get("reason")
    return str(reason) if reason else "21610"


def check_scope(sender: str, field: str = "sender") -> str:
    if sender != ACCOUNT_SCOPE and not ADDRESS.fullmatch(sender):
        raise InvalidRequest(
            f"Invalid field '{field}': a from number, a Messaging Service SID or '*'"
        )
    return sender


def check_to(to: str, field: str = "to") -> str:
    if not ADDRESS.fullmatch(to):
        raise InvalidRequest(f"Invalid field '{field}': must be a phone number or address")
    return to


def check_reason(reason: str, field: str = "reason") -> str:
    if reason not in REASONS:
        raise InvalidRequest(f"Invalid field '{field}': one of {', '.join(REASONS)}")
    return reason


class Suppressions:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def list(
        self,
        account_sid: str,
        *,
        to: str | None = None,
        cursor: int = 0,
        limit: int = 100,
        sender: str | None = None,
        reason: str | None = None,
    ) -> SuppressionPage:
        """A page of entries (HSCAN: a page may hold fewer than `limit` when filtered)."""
        if reason is not None:
            check_reason(reason)
        match = f"{_glob(sender) if sender else '*'} {_glob(to) if to else '*'}"
        if match == "* *":
            match = None  # type: ignore[assignment]
        following, entries = self.redis.hscan(
            keys.suppressed(account_sid), cursor, match=match, count=limit
        )
        items = []
        for field, raw in dict(entries).items():  # type: ignore[arg-type]
            item = _entry(account_sid, str(field), str(raw))
            if reason is None or reason_of(item) == reason:
                items.append(item)
        return SuppressionPage.model_validate(
            {"suppressions": items, "nextCursor": str(following) if following else None}
        )

    def all(self, account_sid: str) -> Iterator[Suppression]:
        for field, raw in self.redis.hscan_iter(keys.suppressed(account_sid), count=1000):
            yield Suppression.model_validate(_entry(account_sid, str(field), str(raw)))

    def add(
        self,
        account_sid: str,
        to: str,
        sender: str = ACCOUNT_SCOPE,
        reason: str = "manual",
        at: str | None = None,
    ) -> Suppression:
        check_to(to)
        check_scope(sender)
        check_reason(reason)
        entry = {"reason": reason, "at": at or now_iso()}
        self.redis.hset(keys.suppressed(account_sid), f"{sender} {to}", json.dumps(entry))
        return Suppression.model_validate(
            {"accountSid": account_sid, "sender": sender, "to": to, **entry}
        )

    def lift(self, account_sid: str, to: str, sender: str | None = None) -> int:
        """Remove the entries for `to` (from one sender, or from all); returns how many."""
        key = keys.suppressed(account_sid)
        if sender:
            return int(self.redis.hdel(key, f"{sender} {to}"))
        fields = [f for f, _ in self.redis.hscan_iter(key, match=f"* {_glob(to)}", count=1000)]
        return int(self.redis.hdel(key, *fields)) if fields else 0

    # -- CSV -----------------------------------------------------------------------------------

    def import_csv(self, account_sid: str, text: str) -> int:
        """Add every row of a CSV with a header naming `to` and optionally `sender` (default
        `*`, the whole account), `reason` (default `import`) and `at`. All rows are checked
        before any is written: a bad row is a 400 naming its line."""
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "to" not in [f.strip() for f in reader.fieldnames]:
            raise InvalidRequest("Invalid CSV: the header must name a 'to' column")
        rows: dict[Any, Any] = {}
        for number, raw in enumerate(reader, start=2):
            row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            where = f"line {number}"
            to = check_to(row.get("to", ""), f"{where}: to")
            sender = check_scope(row.get("sender") or ACCOUNT_SCOPE, f"{where}: sender")
            reason = check_reason(row.get("reason") or "import", f"{where}: reason")
            at = row.get("at") or now_iso()
            if not STAMP.fullmatch(at):
                raise InvalidRequest(f"Invalid field '{where}: at': an ISO 8601 time")
            rows[f"{sender} {to}"] = json.dumps({"reason": reason, "at": at})
            if len(rows) > IMPORT_MAX_ROWS:
                raise InvalidRequest(f"Invalid CSV: more than {IMPORT_MAX_ROWS} rows")
        if rows:
            self.redis.hset(keys.suppressed(account_sid), mapping=rows)
        return len(rows)

    def export_csv(self, account_sid: str) -> Iterator[str]:
        """The account's entries as CSV, a chunk at a time (the header first)."""
        yield _csv_line(CSV_FIELDS)
        for s in self.all(account_sid):
            yield _csv_line((s.to, s.sender, s.reason or "21610", s.at or ""))


def _entry(account_sid: str, field: str, raw: str) -> dict[str, object]:
    sender, _, recipient = field.partition(" ")
    data = json.loads(raw)
    data.setdefault("reason", reason_of(data))
    return {"accountSid": account_sid, "sender": sender, "to": recipient, **data}


def _glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _csv_line(values: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()
