"""Twilio's request signatures, checked by twilio-python's own `RequestValidator` (the core,
`twilio_jobs`, does not import twilio: the API hands this check to
`twilio_jobs.status_callbacks.StatusCallbacks`).

A form is signed over the URL and its parameters; a JSON body over the URL alone, whose query
carries the body's SHA-256 as `bodySHA256`. The URL is tried with and without its port."""

from __future__ import annotations

from twilio.request_validator import RequestValidator


class _Form(dict[str, list[str]]):
    """The form's values by name, repeated names included (RequestValidator asks `getall`)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def signed_by_twilio(
    url: str, params: list[tuple[str, str]] | str, auth_token: str, signature: str | None
) -> bool:
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    if isinstance(params, str):
        if "bodySHA256=" not in url:
            return False  # a JSON body is only signed through its hash in the URL
        return bool(validator.validate(url, params, signature))
    form = _Form()
    for name, value in params:
        form.setdefault(name, []).append(value)
    return bool(validator.validate(url, form, signature))
