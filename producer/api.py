"""The HTTP API: a thin layer over `twilio_jobs.client.Client`.

`create_app` builds the app's state (settings, client, tenants, status callbacks) and includes
the routers of `producer.routes` and the middleware of `producer.middleware`; the routes reach
the state through `producer.deps`.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from producer import middleware, ui
from producer.routes import accounts, campaigns, health, jobs, metrics, sends, webhooks
from producer.twilio_signatures import signed_by_twilio
from twilio_jobs import tracing
from twilio_jobs.client import Client
from twilio_jobs.inbound import Inbound
from twilio_jobs.schemas import ERROR_RESPONSES
from twilio_jobs.settings import Settings, get_settings
from twilio_jobs.status_callbacks import StatusCallbacks
from twilio_jobs.tenancy import Tenants


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Everything loaded at start-up lives as long as the process: keep it out of the
    # collector's full passes, which otherwise stall every request for tens of ms every few
    # thousand requests (the enqueue route's p99 in docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    yield


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing.configure_from_env("twilio-jobs-api")
    client = client or Client(settings)
    app = FastAPI(
        title="twilio-jobs",
        summary="Queue Twilio SMS, MMS and calls; poll or receive the result envelope.",
        version="0.1.0",
        responses=ERROR_RESPONSES,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.client = client
    app.state.tenants = Tenants(settings.api_keys.get_secret_value() if settings.api_keys else None)
    app.state.status_callbacks = StatusCallbacks(
        client.redis, client.settings, client.cipher, signed_by_twilio
    )
    app.state.inbound = Inbound(client.redis, client.settings, signed_by_twilio, client.cipher)
    # Innermost of the middleware: the send POSTs are answered inside the access log and the
    # body-size limit, before the router (producer.routes.sends.FastSends).
    app.add_middleware(sends.FastSends, api=app)
    middleware.install(app, settings.max_body_bytes, settings.campaign_max_body_bytes)
    for module in (sends, jobs, webhooks, campaigns, accounts, health, metrics):
        app.include_router(module.router)
    ui.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            jobs.document_wait(FastAPI.openapi(app), settings.max_wait)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app
