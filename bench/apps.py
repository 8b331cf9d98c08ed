"""The trivial FastAPI app that the enqueue route is compared with, served the same way."""

from __future__ import annotations

from fastapi import FastAPI


def trivial_app() -> FastAPI:
    app = FastAPI()

    @app.post("/trivial")
    async def trivial() -> dict[str, str]:
        return {"status": "ok"}

    return app
