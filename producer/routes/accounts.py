"""The Twilio accounts a tenant has proven it holds (twilio_jobs.tenancy)."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from producer.deps import ClientDep, InboundDep, Owner

router = APIRouter(tags=["accounts"])


class AccountRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accountSid: str = Field(max_length=64)
    accountToken: str = Field(max_length=128)


@router.post("/api/accounts")
async def register_account(
    body: AccountRegistration, who: Owner, client: ClientDep
) -> dict[str, str]:
    """Prove that this API key's tenant holds a Twilio account, so that it may see and
    change the account's shared data (suppressions). One authenticated fetch of the
    account at Twilio; the token is not kept. A send Twilio accepted with a token the
    tenant supplied proves the account too."""
    return await client.accounts.register(who, body.accountSid, body.accountToken)


@router.post("/api/accounts/inbound")
async def register_inbound_account(
    body: AccountRegistration, who: Owner, client: ClientDep, inbound: InboundDep
) -> dict[str, str]:
    """Accept the account's inbound messages (`POST /api/twilio/inbound`): its token is
    checked at Twilio like `POST /api/accounts` (which this also does for the tenant) and kept,
    encrypted, to verify the messages' signatures."""
    answer = await client.accounts.register(who, body.accountSid, body.accountToken)
    inbound.register(body.accountSid, body.accountToken)
    return answer


@router.get("/api/accounts")
def list_accounts(who: Owner, client: ClientDep) -> dict[str, list[str]]:
    """The account SIDs this tenant has proven it holds."""
    return {"accounts": client.accounts.accounts(who)}
