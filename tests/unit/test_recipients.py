"""Per-recipient work of a campaign: normalisation, templates, segments."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from twilio_jobs.recipients import Template, check_to, normalise, segments


def test_fast_path_agrees_with_phonenumbers() -> None:
    rng = random.Random(7)
    numbers = [f"+1{rng.randint(2000000000, 9999999999)}" for _ in range(3000)]
    numbers += [f"+1{rng.randint(200000000, 99999999999)}" for _ in range(1000)]
    numbers += [f"+44{rng.randint(1000000000, 7999999999)}" for _ in range(1000)]
    numbers += [f"+{rng.randint(20, 999)}{rng.randint(10000000, 999999999)}" for _ in range(1000)]
    for text in numbers:
        try:
            parsed = phonenumbers.parse(text, None)
            possible = phonenumbers.is_possible_number(parsed)
            valid = phonenumbers.is_valid_number(parsed)
        except phonenumbers.NumberParseException:
            possible = valid = False
        number = normalise(text, None)
        assert (number.reason == "", number.known) == (possible, valid), text


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+14155550100", None, ("+14155550100", "", True)),
        ("(415) 555-0100", "US", ("+14155550100", "", True)),
        ("020 7946 0958", "GB", ("+442079460958", "", True)),
        (
            "(415) 555-0100",
            None,
            ("", "invalid phone number: unknown country code (give defaultRegion)", False),
        ),
        # The seed's example is one digit too long for +1: Twilio answers 21211.
        ("+150055444006", None, ("", "Invalid 'To' Phone Number: +150055444006", False)),
        ("+1415555", None, ("", "Invalid 'To' Phone Number: +1415555", False)),
        ("415 555", "US", ("", "Invalid 'To' Phone Number: 415 555", False)),
        # Possible, but in no range phonenumbers knows (yet): sent, and left to Twilio.
        ("+19995550123", None, ("+19995550123", "", False)),
        ("call me", "US", ("", "invalid phone number: not a phone number", False)),
        ("", "US", ("", "missing 'to'", False)),
        (None, "US", ("", "missing 'to'", False)),
    ],
)
def test_normalise(value: object, region: str | None, expected: tuple[str, str, bool]) -> None:
    assert normalise(value, region) == expected


def test_check_to_judges_only_numbers() -> None:
    assert check_to("+14155550100") == "" and check_to("+19995550123") == ""
    assert check_to("+150055444006") == "Invalid 'To' Phone Number: +150055444006"
    assert check_to("client:alice") == "" and check_to("sip:bob@example.com") == ""


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


def test_check_to_gives_the_answer_of_the_one_rule() -> None:
    """The single-send fast path (possible or not) agrees with `normalise` everywhere."""
    import random

    from twilio_jobs.recipients import check_to, normalise

    rng = random.Random(7)
    samples = ["+14155550100", "+1415555010", "+150055444006", "+447911123456", "+8613800138000",
               "+9999999", "+10155550100", "+3906698", "client:alice", "+"]  # fmt: skip
    for _ in range(20000):
        size = rng.randint(3, 16)
        samples.append(f"+{rng.randint(1, 9)}{rng.randrange(10 ** (size - 1)):0{size - 1}d}")
    for to in samples:
        expected = normalise(to, None).reason if to.startswith("+") else ""
        assert check_to(to) == expected, to
