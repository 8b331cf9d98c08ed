"""The web dashboard at `/ui` (pages in `pages.py`, sign-in and CSRF in `session.py`)."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from producer.ui.pages import router

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages and its static files."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


__all__ = ["install"]
