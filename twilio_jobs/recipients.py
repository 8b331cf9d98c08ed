"""Per-recipient work of a campaign: E.164 normalisation, `{{name}}` templates, SMS segments.

All of it runs once per recipient on the request path of a 100,000-recipient campaign, so each
piece is written for speed: numbers already in E.164 skip phonenumbers' parser (about 30 us)
and only pay its validity check, for the country's main region first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber

E164 = re.compile(r"^\+([1-9][0-9]{6,14})$")
SEPARATORS = re.compile(r"[\s().\-/]")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code (give defaultRegion)",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
}


class Number(NamedTuple):
    """A recipient's number as Twilio will be asked to send to it."""

    e164: str
    """The E.164 form, or "" when the number cannot be sent to."""
    reason: str
    """Why it cannot ("" when it can)."""
    known: bool
    """In phonenumbers' metadata. A possible number outside it (a range newer than the
    metadata) is still sent, and left to Twilio."""


def invalid_to(value: object) -> str:
    """Twilio's words for a `To` that cannot be a phone number (error 21211)."""
    return f"Invalid 'To' Phone Number: {value}"


def _judge(number: PhoneNumber, e164: str, value: object) -> Number:
    if phonenumbers.is_valid_number(number):
        return Number(e164, "", True)
    if phonenumbers.is_possible_number(number):
        return Number(e164, "", False)
    return Number("", invalid_to(value), False)


def normalise(value: Any, region: str | None) -> Number:
    """The one rule for a recipient, for single sends and campaigns alike: what cannot be a
    phone number (wrong length for its country) is refused in Twilio's words; a possible number
    is sent, whether or not phonenumbers knows its range."""
    if not isinstance(value, str) or not value.strip():
        return Number("", "missing 'to'", False)
    text = SEPARATORS.sub("", value)
    match = E164.match(text)
    if match:
        digits = match.group(1)
        for size in (1, 2, 3):
            code = int(digits[:size])
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
            if regions and digits[size : size + 1] != "0":  # leading zeros: the full parser
                number = PhoneNumber(country_code=code, national_number=int(digits[size:] or 0))
                # is_valid_number tries each region of the code in turn (25 share +1), and takes
                # the first that matches: trying that first one alone is the same answer, faster.
                if phonenumbers.is_valid_number_for_region(number, regions[0]):
                    return Number(text, "", True)
                judged = _judge(number, text, value)
                if judged.e164:
                    return judged
                break  # the full parser may still read it (a national prefix after +1)
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException as exc:
        if text.startswith("+") or exc.error_type not in _PARSE_ERRORS:
            return Number("", invalid_to(value), False)
        return Number("", f"invalid phone number: {_PARSE_ERRORS[exc.error_type]}", False)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return _judge(number, e164, value)


def check_to(to: str) -> str:
    """ "" for a `to` that may be sent to, else the reason; only E.164 numbers are judged
    (client:, sip:, whatsapp: and other addresses are Twilio's to check). The same answer as
    `normalise(to, None).reason`; a single send needs no more than whether the number is
    possible, which costs a fifth of the validity check (this is on every send's path)."""
    if not to.startswith("+"):
        return ""
    match = E164.match(to)
    if match:
        digits = match.group(1)
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE and digits[size : size + 1] != "0":
                number = PhoneNumber(country_code=code, national_number=int(digits[size:] or 0))
                if phonenumbers.is_possible_number(number):
                    return ""
                break
    return normalise(to, None).reason


class Template:
    """A body with `{{name}}` placeholders, split once into literal parts and names."""

    def __init__(self, text: str) -> None:
        self.parts: list[tuple[bool, str]] = []
        last = 0
        for match in PLACEHOLDER.finditer(text):
            self.parts.append((False, text[last : match.start()]))
            self.parts.append((True, match.group(1)))
            last = match.end()
        self.parts.append((False, text[last:]))
        self.static = len(self.parts) == 1
        self.text = text

    @property
    def names(self) -> list[str]:
        """The placeholders' names, each once, in order of first use."""
        return list(dict.fromkeys(part for is_name, part in self.parts if is_name and part != "to"))

    def render(self, variables: Mapping[str, Any]) -> str:
        """The filled text; KeyError names a missing variable."""
        if self.static:
            return self.text
        out = []
        for is_name, part in self.parts:
            if not is_name:
                out.append(part)
                continue
            value = variables.get(part)
            if value is None:
                raise KeyError(part)
            out.append(str(value))
        return "".join(out)


GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def segments(body: str) -> tuple[str, int]:
    """("GSM-7" | "UCS-2", segments) as a handset counts them."""
    septets = 0
    for char in body:
        if char in GSM7_BASIC:
            septets += 1
        elif char in GSM7_EXTENDED:
            septets += 2
        else:
            units = len(body.encode("utf-16-le")) // 2
            return "UCS-2", 1 if units <= 70 else math.ceil(units / 67)
    return "GSM-7", 1 if septets <= 160 else math.ceil(septets / 153)
