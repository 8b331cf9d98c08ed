"""twilio-jobs producer: the HTTP API and the CLI, over `twilio_jobs`.

`Client` and `verify_webhook` are re-exported from `twilio_jobs` for code written against
earlier versions; new code imports them from `twilio_jobs`. They are imported on first use
(PEP 562), so that `twilio-jobs worker`'s supervisor (producer.cli) imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twilio_jobs import Client, verify_webhook

__all__ = ["Client", "verify_webhook"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import twilio_jobs

    value = getattr(twilio_jobs, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
