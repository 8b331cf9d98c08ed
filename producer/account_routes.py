"""HTTP routes for the Twilio accounts a tenant has proven it holds (twilio_jobs.tenancy)."""

# No `from __future__ import annotations`: FastAPI must see the local `Owner` alias at runtime.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from twilio_jobs.client import Client


class AccountRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accountSid: str = Field(max_length=64)
    accountToken: str = Field(max_length=128)


def account_router(jobs: Callable[[], Client], owner: Callable[..., Any]) -> APIRouter:
    router = APIRouter(tags=["accounts"])
    Owner = Annotated[str, Depends(owner)]

    @router.post("/api/accounts")
    async def register_account(body: AccountRegistration, who: Owner) -> dict[str, str]:
        """Prove that this API key's tenant holds a Twilio account, so that it may see and
        change the account's shared data (suppressions). One authenticated fetch of the
        account at Twilio; the token is not kept. A send Twilio accepted with a token the
        tenant supplied proves the account too."""
        return await jobs().accounts.register(who, body.accountSid, body.accountToken)

    @router.get("/api/accounts")
    def list_accounts(who: Owner) -> dict[str, list[str]]:
        """The account SIDs this tenant has proven it holds."""
        return {"accounts": jobs().accounts.accounts(who)}

    return router
