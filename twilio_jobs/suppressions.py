"""Recipients who opted out (Twilio error 21610), per account and sender.

The worker records one when a send fails with 21610 (`twilio_jobs.gates`), and every later job to
that recipient from that sender (a `from` number or Messaging Service) ends `suppressed`
without calling Twilio. Entries are kept until lifted here.
"""

from __future__ import annotations

import json

from redis import Redis

from twilio_jobs import keys
from twilio_jobs.schemas import SuppressionPage


class Suppressions:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def list(
        self, account_sid: str, *, to: str | None = None, cursor: int = 0, limit: int = 100
    ) -> SuppressionPage:
        match = f"* {to}" if to else None
        following, entries = self.redis.hscan(
            keys.suppressed(account_sid), cursor, match=match, count=limit
        )
        items = []
        for field, raw in dict(entries).items():  # type: ignore[arg-type]
            sender, _, recipient = str(field).partition(" ")
            items.append({"accountSid": account_sid, "sender": sender, "to": recipient,
                          **json.loads(raw)})  # fmt: skip
        return SuppressionPage.model_validate(
            {"suppressions": items, "nextCursor": str(following) if following else None}
        )

    def lift(self, account_sid: str, to: str, sender: str | None = None) -> int:
        """Remove the entries for `to` (from one sender, or from all); returns how many."""
        key = keys.suppressed(account_sid)
        if sender:
            return int(self.redis.hdel(key, f"{sender} {to}"))
        fields = [f for f, _ in self.redis.hscan_iter(key, match=f"* {to}", count=1000)]
        return int(self.redis.hdel(key, *fields)) if fields else 0
