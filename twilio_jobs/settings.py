"""The one settings object, read from the environment (and a `.env` file if present)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from twilio_jobs.signing import signing_key
from twilio_jobs.windows import SendWindow


class Settings(BaseSettings):
    # An empty variable is unset (`TWILIO_JOBS_WEBHOOK_SECRET=` must not mean "sign with an
    # empty key"), as docker-compose passes `${NAME:-}` for a name the shell does not set.
    model_config = SettingsConfigDict(
        env_prefix="TWILIO_JOBS_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
    )

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    broker_url: str | None = Field(default=None, validation_alias="BROKER_URL")
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com", validation_alias="TWILIO_API_BASE_URL"
    )
    # Verify's host (verify.twilio.com); when unset and TWILIO_API_BASE_URL is not
    # api.twilio.com, Verify goes to TWILIO_API_BASE_URL too (one base for every host).
    twilio_verify_base_url: str | None = Field(
        default=None, validation_alias="TWILIO_VERIFY_BASE_URL"
    )
    twilio_account_sid: str | None = Field(default=None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, validation_alias="TWILIO_AUTH_TOKEN")

    secret_key: SecretStr | None = None
    # During a rotation: still decrypts credentials and accepts tokens made with it.
    secret_key_previous: SecretStr | None = None
    # `whsec_<base64>` (Standard Webhooks) or any other text, used as its bytes.
    webhook_secret: SecretStr | None = None
    # During a rotation: deliveries carry a second signature made with it.
    webhook_secret_previous: SecretStr | None = None
    public_url: str | None = None
    # Bearer keys, `key` or `tenant:key`, comma-separated (twilio_jobs.tenancy).
    api_keys: SecretStr | None = None
    result_ttl: int = 7 * 24 * 3600
    # Replicas that must hold an accepted job before the API answers 202 (Redis WAIT; 0: none,
    # a failover may then lose the last accepted jobs, see twilio_jobs.connections).
    store_min_replicas: int = Field(default=0, ge=0)
    max_attempts: int = Field(default=8, ge=1, le=100)
    # A 429 does not use up an attempt: a throttled job waits, and fails only after this long.
    throttled_give_up: float = Field(default=3600.0, gt=0)

    queue: str = "twilio_jobs"
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    backoff_base: float = 1.0
    backoff_max: float = 600.0
    visibility_timeout: int = 300
    requeue_after: float = 300.0
    stall_after: float = 60.0
    # A worker process whose heartbeat is older than this is dead: what it had taken (task
    # messages, send-ledger leases) is handed out again at once (twilio_jobs.heartbeat).
    worker_dead_after: float = Field(default=10.0, ge=2.0)
    max_body_bytes: int = 64 * 1024
    max_wait: float = 60.0
    # Connections to Twilio per pool; unset: each pool sized to what it serves, the worker's
    # concurrency for the threads, the batch window for the event loop's coroutines.
    http_pool_size: int | None = Field(default=None, ge=1)
    worker_concurrency: int = 64
    # `twilio-jobs worker` on a Redis broker takes single sends in bulk and runs them as
    # coroutines on the worker's event loop (worker/consumer.py); off: a Celery task each.
    bulk_consumer: bool = True
    scheduler_interval: float = 0.2
    reconcile_delay: float = 2.0
    reconcile_window: float = 120.0
    data_dir: str = ".twilio-jobs"
    # Log lines as JSON or text; phone numbers in them whole only with log_pii.
    log_format: Literal["text", "json"] = "text"
    log_pii: bool = False
    # A worker process serves its own Prometheus metrics on this port (unset: not served).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # -- result webhooks and Twilio status callbacks
    default_callback_url: str | None = None
    # Inbound messages (POST /api/twilio/inbound): where their `inbound.message` events go
    # (unset: TWILIO_JOBS_DEFAULT_CALLBACK_URL; neither: no event), and the auth tokens of
    # accounts other than the default one, as JSON: TWILIO_JOBS_INBOUND_ACCOUNTS='{"AC...": "..."}'.
    inbound_url: str | None = None
    inbound_accounts: SecretStr | None = None
    webhook_allow_private: bool = False
    # 17 attempts with these delays span about 24 hours (16 to 32 with jitter).
    webhook_max_attempts: int = Field(default=17, ge=1, le=100)
    webhook_backoff_base: float = 30.0
    webhook_backoff_max: float = 4 * 3600.0
    webhook_timeout: float = 10.0
    webhook_pool_size: int = 32

    # -- campaigns and global pacing
    account_max_in_flight: int = Field(default=25, ge=1)
    calls_per_second: float = Field(default=1.0, ge=0)
    # Per-account in-flight limits and per-sender rates (messages/s; 0 = unlimited), as JSON:
    # TWILIO_JOBS_ACCOUNT_LIMITS='{"AC...": 50}', TWILIO_JOBS_SENDER_RATES='{"+1415...": 3}'.
    account_limits: dict[str, int] = {}
    sender_rates: dict[str, float] = {}
    long_code_mps: float = 1.0
    toll_free_mps: float = 3.0
    short_code_mps: float = 100.0
    messaging_service_mps: float = 10.0
    pace_max_wait: float = 1.0
    aimd_recover_per_second: float = 1.0
    aimd_cut_interval: float = 1.0
    retry_after_max: float = 60.0
    campaign_max_recipients: int = 100_000
    campaign_max_body_bytes: int = 64 * 1024 * 1024
    batch_size: int = Field(default=100, ge=1, le=1000)
    batch_window: int = Field(default=200, ge=1)
    # Quiet hours for every sendSms, sendMms and makeCall job and campaign that names no
    # `sendWindow` of its own, as JSON of the same shape (twilio_jobs.windows); unset: none.
    default_send_window: SendWindow | None = None

    @field_validator("secret_key", "secret_key_previous")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("TWILIO_JOBS_SECRET_KEY must be at least 32 characters")
        return value

    @field_validator("webhook_secret", "webhook_secret_previous")
    @classmethod
    def _usable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())  # a malformed whsec_ secret fails at start
        return value

    @property
    def inbound_tokens(self) -> dict[str, str]:
        """Auth tokens by account SID for verifying inbound messages: the default account's and
        TWILIO_JOBS_INBOUND_ACCOUNTS'. Parsed here rather than by a validator, whose error
        would show the value; the API parses it once at start (`twilio_jobs.inbound`)."""
        found = (
            _parse_tokens(self.inbound_accounts.get_secret_value()) if self.inbound_accounts else {}
        )
        if self.twilio_account_sid and self.twilio_auth_token is not None:
            found.setdefault(self.twilio_account_sid, self.twilio_auth_token.get_secret_value())
        return found

    @property
    def webhook_secrets(self) -> list[str]:
        """The secrets each delivery is signed with, the current one first; none: unsigned."""
        if self.webhook_secret is None:
            return []
        found = [self.webhook_secret.get_secret_value()]
        if self.webhook_secret_previous is not None:
            found.append(self.webhook_secret_previous.get_secret_value())
        return found

    @property
    def secret_keys(self) -> list[str]:
        """TWILIO_JOBS_SECRET_KEY, then the previous one during a rotation."""
        if self.secret_key is None:
            raise RuntimeError("TWILIO_JOBS_SECRET_KEY is required")
        keys = [self.secret_key.get_secret_value()]
        if self.secret_key_previous is not None:
            keys.append(self.secret_key_previous.get_secret_value())
        return keys

    @property
    def broker(self) -> str:
        return self.broker_url or self.store_url

    @property
    def store_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError("REDIS_URL is not set (use `twilio-jobs serve` for an embedded one)")
        return self.redis_url


def _parse_tokens(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()
    ):
        # the message never repeats the value: it holds tokens
        raise ValueError('TWILIO_JOBS_INBOUND_ACCOUNTS must be a JSON object {"AC...": "token"}')
    return dict(data)


@lru_cache
def get_settings() -> Settings:
    return Settings()
