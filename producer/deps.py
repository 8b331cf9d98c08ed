"""Dependencies shared by the routes, as `Annotated` types over the app's state.

`create_app` puts the collaborators on `app.state` once; a route asks for them by type:
`def route(client: ClientDep, who: Owner)`. The dependencies are `async def` so that FastAPI
calls them on the event loop rather than through its thread pool.
"""

from typing import Annotated

from fastapi import Depends, Request

from twilio_jobs.client import Client
from twilio_jobs.inbound import Inbound
from twilio_jobs.status_callbacks import StatusCallbacks


async def get_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


async def get_status_callbacks(request: Request) -> StatusCallbacks:
    callbacks: StatusCallbacks = request.app.state.status_callbacks
    return callbacks


async def get_inbound(request: Request) -> Inbound:
    inbound: Inbound = request.app.state.inbound
    return inbound


async def owner(request: Request) -> str:
    """The request's tenant id ("" without API keys). The header is read directly rather
    than declared as a Header parameter, which goes through FastAPI's per-request parameter
    validation."""
    tenant: str = request.app.state.tenants.identify(request.headers.get("authorization"))
    return tenant


ClientDep = Annotated[Client, Depends(get_client)]
StatusCallbacksDep = Annotated[StatusCallbacks, Depends(get_status_callbacks)]
InboundDep = Annotated[Inbound, Depends(get_inbound)]
Owner = Annotated[str, Depends(owner)]
