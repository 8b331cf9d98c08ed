"""The contract: request bodies, the job record and the seed's envelopes (job states are in
`twilio_jobs.lifecycle`)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from twilio_jobs.envelopes import error_envelope, success_envelope
from twilio_jobs.errors import twilio_style
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.recipients import check_to
from twilio_jobs.windows import SendWindow


class JobKind(StrEnum):
    """What a job asks Twilio for; each has one spec in `twilio_jobs.twilio.endpoints`."""

    sendSms = "sendSms"
    sendMms = "sendMms"
    makeCall = "makeCall"
    startVerification = "startVerification"


ADDRESS = re.compile(r"^(\+[1-9][0-9]{1,14}|(client|sip|whatsapp|messenger|rcs):\S{1,250})$")
MAX_BODY = 1600

# Fields that are ours; every other field of a request is a Twilio create parameter.
OWN_FIELDS = frozenset(
    {"accountSid", "accountToken", "callbackUrl", "idempotencyKey", "sendAt", "sendWindow", "kind"}
)

Url = AnyHttpUrl
Short = Field(default=None, max_length=256)


class _SendBase(BaseModel):
    """Every job request: the fields below are declared by each kind's model, in its order."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    if TYPE_CHECKING:
        accountSid: str | None
        accountToken: str | None
        to: str | None
        callbackUrl: Url | None
        idempotencyKey: str | None
        sendAt: datetime | None
        sendWindow: SendWindow | None


class _TwilioSendBase(_SendBase):
    """A Programmable Messaging or Voice create."""

    accountSid: str | None = Field(default=None, max_length=64)
    accountToken: str | None = Field(default=None, max_length=128)
    from_: str | None = Field(default=None, alias="from", max_length=256)
    to: str | None = Field(default=None, max_length=256)
    statusCallback: Url | None = None
    applicationSid: str | None = Short
    callbackUrl: Url | None = None
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=255)
    sendAt: datetime | None = None
    sendWindow: SendWindow | None = None

    @field_validator("to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not ADDRESS.match(value):
            raise ValueError("must be an E.164 number (+14155550100) or a client:/sip: address")
        return value


class SmsRequest(_TwilioSendBase):
    messagingServiceSid: str | None = Short
    body: str | None = Field(default=None, max_length=MAX_BODY)
    mediaUrl: Url | list[Url] | None = None
    maxPrice: float | None = None
    provideFeedback: bool | None = None
    attempt: int | None = Field(default=None, ge=1)
    validityPeriod: int | None = Field(default=None, ge=1, le=36000)
    forceDelivery: bool | None = None
    contentRetention: str | None = Short
    addressRetention: str | None = Short
    smartEncoded: bool | None = None
    persistentAction: list[str] | None = None
    trafficType: str | None = Short
    shortenUrls: bool | None = None
    sendAsMms: bool | None = None
    contentVariables: str | None = Field(default=None, max_length=16384)
    messageIntent: str | None = Short
    riskCheck: str | None = Short
    fallbackFrom: str | None = Short
    contentSid: str | None = Short


class MmsRequest(SmsRequest):
    pass


class CallRequest(_TwilioSendBase):
    url: Url | None = None
    twiml: str | None = Field(default=None, max_length=4000)
    method: str | None = Short
    fallbackUrl: Url | None = None
    fallbackMethod: str | None = Short
    statusCallbackEvent: list[str] | None = None
    statusCallbackMethod: str | None = Short
    sendDigits: str | None = Field(default=None, max_length=32)
    timeout: int | None = Field(default=None, ge=1, le=600)
    record: bool | None = None
    recordingChannels: str | None = Short
    recordingStatusCallback: Url | None = None
    recordingStatusCallbackMethod: str | None = Short
    recordingStatusCallbackEvent: list[str] | None = None
    machineDetection: str | None = Short
    machineDetectionTimeout: int | None = None
    machineDetectionSpeechThreshold: int | None = None
    machineDetectionSpeechEndThreshold: int | None = None
    machineDetectionSilenceTimeout: int | None = None
    asyncAmd: str | None = Short
    asyncAmdStatusCallback: Url | None = None
    asyncAmdStatusCallbackMethod: str | None = Short
    trim: str | None = Short
    callerId: str | None = Short
    byoc: str | None = Short
    callReason: str | None = Short
    callToken: str | None = Field(default=None, max_length=4096)
    recordingTrack: str | None = Short
    timeLimit: int | None = Field(default=None, ge=1)


VerifyChannel = Literal["sms", "call", "whatsapp", "email"]
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


class VerificationRequest(_SendBase):
    """Twilio Verify v2: start a verification (the service sends the code)."""

    accountSid: str | None = Field(default=None, max_length=64)
    accountToken: str | None = Field(default=None, max_length=128)
    serviceSid: str = Field(pattern=r"^VA[0-9a-fA-F]{32}$")
    channel: VerifyChannel = "sms"
    to: str | None = Field(default=None, max_length=320)
    locale: str | None = Field(default=None, max_length=16)
    customFriendlyName: str | None = Field(default=None, max_length=30)
    appHash: str | None = Field(default=None, max_length=64)
    templateSid: str | None = Short
    callbackUrl: Url | None = None
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=255)
    sendAt: datetime | None = None

    @field_validator("to")
    @classmethod
    def _address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("channel") == "email":
            if not EMAIL.match(value):
                raise ValueError("must be an email address for channel 'email'")
        elif not E164.match(value):
            raise ValueError("must be an E.164 number (+14155550100)")
        return value


_METHOD_FIELDS = (
    "method",
    "fallbackMethod",
    "statusCallbackMethod",
    "recordingStatusCallbackMethod",
    "asyncAmdStatusCallbackMethod",
)


def twilio_params(request: _SendBase) -> dict[str, Any]:
    """The Twilio form parameters of a request: every field that is not ours, PascalCased."""
    params: dict[str, Any] = {}
    for name, value in request.model_dump(by_alias=True, exclude_none=True).items():
        if name in OWN_FIELDS:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list):
            value = [str(v) for v in value]
        else:
            value = str(value)
        params[name[0].upper() + name[1:]] = value
    return params


def check_twilio_rules(kind: JobKind, request: _SendBase) -> None:
    """Rules Twilio would reject a create for, answered with Twilio's own words before sending."""
    from twilio_jobs.errors import InvalidRequest

    if kind is JobKind.startVerification:
        # Verify's own words (error 60200) for what it would refuse.
        if not request.to:
            raise InvalidRequest(twilio_style("Missing required parameter To in the post body"))
        if isinstance(request, VerificationRequest) and request.channel != "email":
            impossible = check_to(request.to)
            if impossible:
                raise InvalidRequest(twilio_style(f"Invalid parameter `To`: {request.to}"))
        return
    if not request.to:
        raise InvalidRequest(twilio_style("A 'To' phone number is required."))
    impossible = check_to(request.to)
    if impossible:
        raise InvalidRequest(twilio_style(impossible))
    if kind is JobKind.makeCall:
        assert isinstance(request, CallRequest)
        if not request.from_:
            raise InvalidRequest(twilio_style("Caller phone number is required"))
        for field in _METHOD_FIELDS:
            value = getattr(request, field)
            if value is not None and value.upper() not in ("GET", "POST"):
                raise InvalidRequest(twilio_style(f"Method is not valid: {value}"))
        if not (request.url or request.twiml or request.applicationSid):
            raise InvalidRequest(twilio_style("Url parameter is required."))
        return
    assert isinstance(request, SmsRequest)
    if not (request.from_ or request.messagingServiceSid):
        raise InvalidRequest(twilio_style('A "From" phone number is required.'))
    if kind is JobKind.sendMms and not request.mediaUrl:
        raise InvalidRequest("mediaUrl is required for sendMms")
    if not (request.body or request.mediaUrl or request.contentSid):
        raise InvalidRequest(twilio_style("Message body is required."))


class JobError(BaseModel):
    status: int | None = None
    code: int | None = None
    message: str
    retryable: bool = False


class WebhookState(BaseModel):
    """The job's latest result-webhook delivery."""

    id: str
    event: str
    status: str  # pending | sending | retrying | delivered | failed
    attempts: int = 0
    lastError: str | None = None
    lastAttemptAt: str | None = None


class JobRecord(BaseModel):
    jobId: str
    kind: JobKind
    status: JobStatus
    attempts: int = 0
    createdAt: str
    updatedAt: str
    campaignId: str | None = None
    twilioSid: str | None = None
    deliveryStatus: str | None = None
    errorCode: int | None = None
    requestId: str | None = None  # the X-Request-Id of the request that made the job
    error: JobError | None = None
    result: dict[str, Any] | None = None
    webhook: WebhookState | None = None


class JobPage(BaseModel):
    """A page of a tenant's jobs, newest first (`GET /api/jobs`); `nextCursor` is null at the
    end."""

    jobs: list[JobRecord]
    nextCursor: str | None = None


class CampaignPage(BaseModel):
    """A page of a tenant's campaigns, newest first (`GET /api/campaigns`), each as
    `GET /api/campaigns/{id}` shows it."""

    campaigns: list[CampaignStatus]
    nextCursor: str | None = None


RECORD_FIELDS = tuple(name for name in JobRecord.model_fields if name not in ("jobId", "webhook"))
"""The job hash fields the record is rendered from (`store.render`), less its own webhook state:
what a webhook delivery takes a copy of when its event happens (`lua/outbox.lua`)."""


# A queued send: the answer of the send routes and of every client's `send_*`. (The records
# the API declares as response models have no docstring: it would change the OpenAPI document.)
class Accepted(BaseModel):
    jobId: str
    status: JobStatus
    statusUrl: str


# The answer to a campaign (with `dryRun`, its validation and estimate only).
class CampaignAccepted(BaseModel):
    campaignId: str | None
    accepted: int
    rejected: list[dict[str, Any]]
    duplicates: int
    statusUrl: str | None = None
    dryRun: bool = False
    unknownRanges: int | None = None
    """Dry run: accepted numbers outside phonenumbers' metadata (sent; Twilio decides)."""
    segments: dict[str, Any] | None = None
    estimatedSeconds: float | None = None
    deferred: int | None = None
    """Dry run with a send window: recipients whose window is closed when the campaign starts
    (they wait in the schedule until it opens)."""
    etaSeconds: float | None = None
    """Dry run with a send window: seconds until the last recipient is expected sent, the
    windows applied."""


class ErrorCount(BaseModel):
    code: int
    count: int


class Pacing(BaseModel):
    """The account's in-flight limit as AIMD has it now, and the requests in flight."""

    inFlightLimit: int
    maxInFlight: int
    inFlight: int


class CampaignStatus(BaseModel):
    """A campaign's dashboard (`GET /api/campaigns/{id}`, and the answer of pause, resume and
    cancel)."""

    campaignId: str
    name: str | None = None
    kind: JobKind
    state: str  # active | paused | cancelled | completed
    createdAt: str | None = None
    sendAt: str | None = None
    total: int
    counts: dict[str, int]
    """Jobs per status, every status present."""
    deliveryCounts: dict[str, int]
    progress: float
    sendRate: float
    """Successful sends per second over the last seconds."""
    etaSeconds: float | None = None
    topErrors: list[ErrorCount]
    # Error codes of messages and calls Twilio reported failed or undelivered (status callbacks).
    deliveryErrors: list[ErrorCount] = []
    pacing: Pacing


class CampaignJobs(BaseModel):
    """A page of a campaign's job records; `nextCursor` is None at the end.

    The API shows each record as the job store holds it (no `webhook` key before a webhook
    was queued), which `model_dump(exclude_unset=True)` keeps."""

    jobs: list[JobRecord]
    nextCursor: str | None = None


class Suppression(BaseModel):
    """A recipient who must not be sent to by one scope of an account: `sender` is a from
    number, a Messaging Service SID or `*` (the whole account)."""

    model_config = ConfigDict(extra="allow")

    accountSid: str
    sender: str
    to: str
    code: int | None = None
    at: str | None = None
    jobId: str | None = None
    """The job whose send was refused (reason 21610)."""
    reason: str | None = None
    """Why: `21610` (Twilio refused a send), `keyword` (an inbound STOP), `manual`, `import`."""


class SuppressionPage(BaseModel):
    """A page of an account's suppressions; `nextCursor` is None at the end. The API shows
    each entry as stored, which `model_dump(exclude_unset=True)` keeps."""

    suppressions: list[Suppression]
    nextCursor: str | None = None


class FailedDelivery(BaseModel):
    """A result-webhook delivery that ran out of attempts (`GET /api/webhooks/failed`)."""

    id: str
    jobId: str | None = None
    event: str | None = None
    url: str | None = None
    attempts: int = 0
    lastError: str | None = None
    lastAttemptAt: str | None = None
    failedAt: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": "Error envelope",
        "content": {"application/json": {"example": error_envelope("...")}},
    }
    for code in (400, 401, 403, 404, 409, 413, 503)
}
"""Every route may answer these with the error envelope (documented once, on the app)."""

__all__ = [
    "ERROR_RESPONSES",
    "Accepted",
    "CallRequest",
    "CampaignAccepted",
    "CampaignJobs",
    "CampaignStatus",
    "ErrorCount",
    "FailedDelivery",
    "CampaignPage",
    "JobError",
    "JobKind",
    "JobPage",
    "JobRecord",
    "JobStatus",
    "MmsRequest",
    "Pacing",
    "RECORD_FIELDS",
    "SmsRequest",
    "Suppression",
    "SuppressionPage",
    "VerificationRequest",
    "WebhookState",
    "check_twilio_rules",
    "error_envelope",
    "success_envelope",
    "twilio_params",
]
