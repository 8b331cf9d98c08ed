"""Tenants and the accounts they have proven they hold.

`TWILIO_JOBS_API_KEYS` lists bearer keys, each `tenant:key` or a bare key (its own tenant). A
request's tenant id is the tenant's name, or for a bare key `owner_of(key)`, a digest; records
hold that id, never a key. Keys are kept only as SHA-256 digests and compared in constant time.
Without keys there is one tenant, the empty id, and nothing below applies to it.

Jobs, campaigns and webhook deliveries belong to the tenant that created them. An account's
shared data (its suppressions) is shared by every tenant that has proven it holds the account:
by a send Twilio accepted with a token the tenant supplied (the worker's success write,
`lua/prove.lua`), or by registering the account (`AccountRegistry.register`: one authenticated GET
of Twilio's Account resource; the token is not kept). The server's default credentials prove
nothing to a tenant. Proofs are kept `TWILIO_JOBS_RESULT_TTL` after the latest one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import httpx
from redis import Redis

from twilio_jobs import keys
from twilio_jobs.errors import Forbidden, InvalidRequest, ServiceUnavailable, Unauthorized

TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
UNAUTHORIZED = "A valid API key is required: Authorization: Bearer <key>"


def owner_of(api_key: str | None) -> str:
    """The tenant id of a bare key (a digest: records never hold the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32] if api_key else ""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Tenants:
    """The configured keys, as digests, each with its tenant id."""

    def __init__(self, spec: str | None) -> None:
        self._keys: list[tuple[bytes, str]] = []
        for entry in (spec or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            name, colon, key = entry.partition(":")
            if not colon:
                name, key = owner_of(entry), entry
            elif not TENANT_NAME.fullmatch(name) or not key:
                raise ValueError(
                    "TWILIO_JOBS_API_KEYS: each entry is `key` or `tenant:key`, the tenant a name "
                    "of letters, digits, `_`, `.` or `-` (entry number "
                    f"{len(self._keys) + 1})"
                )
            self._keys.append((_digest(key), name))

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, authorization: str | None) -> str:
        """The tenant id of an `Authorization: Bearer <key>` header; "" when keys are off."""
        if not self._keys:
            return ""
        scheme, _, key = (authorization or "").partition(" ")
        presented = _digest(key)
        found = None
        for digest, tenant in self._keys:  # every entry, so the time taken tells nothing
            if hmac.compare_digest(digest, presented):
                found = tenant
        if scheme.lower() != "bearer" or not key or found is None:
            raise Unauthorized(UNAUTHORIZED)
        return found


class AccountRegistry:
    """Which accounts each tenant has proven it holds."""

    def __init__(
        self,
        redis: Redis,
        *,
        api_base_url: str,
        ttl: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.redis = redis
        self.api_base_url = api_base_url.rstrip("/")
        self.ttl = ttl
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)

    def proven(self, tenant: str, account_sid: str) -> bool:
        if not tenant:
            return True
        at = self.redis.zscore(keys.proven(tenant), account_sid)
        return at is not None and float(at) > time.time() - self.ttl

    def require(self, tenant: str, account_sid: str) -> None:
        """Forbidden unless the tenant has proven it holds the account."""
        if not self.proven(tenant, account_sid):
            raise Forbidden(
                f"Account {account_sid} is not proven for this API key: send with its "
                "credentials, or register it with POST /api/accounts"
            )

    def accounts(self, tenant: str) -> list[str]:
        since = time.time() - self.ttl
        return sorted(str(s) for s in self.redis.zrangebyscore(keys.proven(tenant), since, "+inf"))

    def record(self, tenant: str, account_sid: str) -> None:
        key = keys.proven(tenant)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(key, {account_sid: time.time()})
        pipe.expire(key, self.ttl)
        pipe.execute()

    async def register(self, tenant: str, account_sid: str, token: str) -> dict[str, str]:
        """Prove the account with one authenticated fetch of its Account resource."""
        if not ACCOUNT_SID.fullmatch(account_sid):
            raise InvalidRequest("Invalid field 'accountSid': must be AC and 32 hex digits")
        if not token:
            raise InvalidRequest("Invalid field 'accountToken': must not be empty")
        url = f"{self.api_base_url}/2010-04-01/Accounts/{account_sid}.json"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                answer = await http.get(url, auth=(account_sid, token))
        except httpx.HTTPError:
            raise ServiceUnavailable("Twilio could not be reached; try again") from None
        if answer.status_code == 401:
            raise Forbidden("[HTTP 401] Unable to fetch record: Authenticate")
        if answer.status_code == 404:
            raise InvalidRequest(f"[HTTP 404] Unable to fetch record: no account {account_sid}")
        if answer.status_code != 200:
            raise ServiceUnavailable(
                f"Twilio answered HTTP {answer.status_code} to the account check; try again"
            )
        try:
            resource = answer.json()
        except ValueError:
            resource = {}
        if not isinstance(resource, dict) or resource.get("sid", account_sid) != account_sid:
            raise ServiceUnavailable("Twilio's answer to the account check was not understood")
        self.record(tenant, account_sid)
        return {
            "accountSid": account_sid,
            "friendlyName": str(resource.get("friendly_name") or ""),
            "status": str(resource.get("status") or ""),
        }
