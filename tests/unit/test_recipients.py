"""Per-recipient work of a campaign: normalisation, templates, segments."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from twilio_jobs.recipients import Template, normalise, segments


def test_fast_path_agrees_with_phonenumbers() -> None:
    rng = random.Random(7)
    numbers = [f"+1{rng.randint(2000000000, 9999999999)}" for _ in range(3000)]
    numbers += [f"+44{rng.randint(1000000000, 7999999999)}" for _ in range(1000)]
    numbers += [f"+{rng.randint(20, 999)}{rng.randint(10000000, 999999999)}" for _ in range(1000)]
    for text in numbers:
        try:
            expected = phonenumbers.is_valid_number(phonenumbers.parse(text, None))
        except phonenumbers.NumberParseException:
            expected = False
        assert (normalise(text, None)[1] == "") == expected, text


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+14155550100", None, ("+14155550100", "")),
        ("(415) 555-0100", "US", ("+14155550100", "")),
        ("020 7946 0958", "GB", ("+442079460958", "")),
        (
            "(415) 555-0100",
            None,
            ("", "invalid phone number: unknown country code (give defaultRegion)"),
        ),
        ("+150055444006", None, ("", "invalid phone number: not a valid number for its region")),
        ("call me", "US", ("", "invalid phone number: not a phone number")),
        ("", "US", ("", "missing 'to'")),
        (None, "US", ("", "missing 'to'")),
    ],
)
def test_normalise(value: object, region: str | None, expected: tuple[str, str]) -> None:
    assert normalise(value, region) == expected


def test_template() -> None:
    template = Template("Hi {{ name }}, code {{code}} {{name}}")
    assert template.render({"name": "Ann", "code": 7}) == "Hi Ann, code 7 Ann"
    with pytest.raises(KeyError, match="code"):
        template.render({"name": "Ann"})
    assert Template("no placeholders").render({}) == "no placeholders"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("x" * 160, ("GSM-7", 1)),
        ("x" * 161, ("GSM-7", 2)),
        ("€" * 80, ("GSM-7", 1)),  # escape characters count twice
        ("€" * 81, ("GSM-7", 2)),
        ("é" * 200, ("GSM-7", 2)),
        ("☃" * 70, ("UCS-2", 1)),
        ("☃" * 71, ("UCS-2", 2)),
        ("😀" * 35, ("UCS-2", 1)),  # two UTF-16 units each
    ],
)
def test_segments(body: str, expected: tuple[str, int]) -> None:
    assert segments(body) == expected
