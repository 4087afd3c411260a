"""PCI guard: card numbers are refused anywhere in a command, without echoing them."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.cards import luhn_valid
from domain.errors import CardNumberRefused
from domain.identity import in_letters
from domain.notifications.messages import message_id
from domain.pci import (
    find_card_number,
    mask_card_numbers,
    mask_card_numbers_in_bytes,
    mask_value,
    refuse_card_numbers,
    safe_repr,
)
from domain.webhooks.delivery import delivery_id_for

CARD = "4242424242424242"


def test_luhn_checksum() -> None:
    assert luhn_valid("79927398713")
    assert luhn_valid(CARD)
    assert not luhn_valid("79927398710")
    assert not luhn_valid("")
    assert not luhn_valid("4242a")


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        CARD,
        "my card 4111111111111111 thanks",
        "378282246310005",  # Amex, 15 digits
        "6011111111111117",
        "9" + CARD + "999",  # a card hidden in a 20-digit run
        "4242.4242.4242.4242",
        "4242\t4242\t4242\t4242",
        "4242  4242  4242  4242",
        "4242 / 4242 / 4242 / 4242",
        "4242_4242_4242_4242",
        "4242,4242;4242:4242",
        "\uff14\uff12\uff14\uff12" * 4,  # full-width digits
        "\u0664\u0662\u0664\u0662" * 4,  # Arabic-Indic digits
        "card: 4242-4242-4242-4242, exp 12/27",
    ],
)
def test_card_numbers_are_found(text: str) -> None:
    assert find_card_number(text)
    assert find_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "tok_visa",
        "+1 (415) 555-2671",
        "+44 20 7946 0958",
        "1234567890123",  # 13 digits failing Luhn
        "424242424242",  # 12 digits
        "2024-01-15T10:00:00Z",
        "order 12345 qty 3",
        "4242    4242 4242 4242",  # four spaces: two numbers, neither long enough
        "4242a4242b4242c4242",  # letters end a number
        "0000 0000 0000 0000",  # no card number starts with 0
        "amounts up to 100,000,000,000,000,000 minor units",
        "",
    ],
)
def test_ordinary_text_is_not_a_card_number(text: str) -> None:
    assert not find_card_number(text)


@given(st.text(alphabet="0123456789", min_size=13, max_size=60))
def test_window_search_agrees_with_the_obvious_definition(digits: str) -> None:
    expected = any(
        luhn_valid(digits[i : i + n]) and digits[i] != "0"
        for n in range(13, 20)
        for i in range(len(digits) - n + 1)
    )
    assert find_card_number(digits) == expected


def test_long_digit_runs_are_searched_to_the_end() -> None:
    assert not find_card_number("1" * 100_000)  # no 13-19 run of ones passes Luhn
    assert find_card_number("1" * 100_000 + " " + CARD)
    assert find_card_number("1 " * 50_000 + "x" + CARD)


def test_refuse_card_numbers_names_the_field_but_never_the_value() -> None:
    with pytest.raises(CardNumberRefused) as excinfo:
        refuse_card_numbers({"name": "Ada", "payment_method": "4242 4242 4242 4242"})
    message = str(excinfo.value)
    assert "payment_method" in message
    assert "tok_visa" in message
    assert "4242" not in message


def test_refuse_card_numbers_walks_nested_values() -> None:
    with pytest.raises(CardNumberRefused) as excinfo:
        refuse_card_numbers({"metadata": {"notes": ["hi", f"card {CARD}"]}})
    assert "metadata.notes[1]" in str(excinfo.value)
    assert CARD not in str(excinfo.value)
    with pytest.raises(CardNumberRefused) as excinfo:
        refuse_card_numbers({"metadata": {CARD: "x"}})
    assert CARD not in str(excinfo.value)


def test_refuse_card_numbers_lets_tokens_and_ordinary_fields_through() -> None:
    refuse_card_numbers(
        {
            "payment_method": "tok_visa",
            "email": "ada@example.com",
            "quantity": 3,
            "metadata": {"phone": "+44 20 7946 0958", "tags": ("a", "b")},
        }
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4242 4242 4242 4242", "**** **** **** 4242"),
        ("pay 4242.4242.4242.4242 now", "pay ****.****.****.4242 now"),
        ("\uff14\uff12\uff14\uff12" * 4, "*" * 12 + "\uff14\uff12\uff14\uff12"),
        ("tok_visa", "tok_visa"),
    ],
)
def test_masking_keeps_the_last_four_digits(text: str, masked: str) -> None:
    assert mask_card_numbers(text) == masked
    assert not find_card_number(mask_card_numbers(text))


def test_masking_bytes_keeps_their_length_and_framing() -> None:
    raw = b"\x00\x17" + "card \uff14\uff12\uff14\uff12".encode() * 1 + b"4242424242424\xff"
    data = b"\x02" + (CARD + " x").encode() + b"\xfe\x01" + "\uff14".encode()
    masked, found = mask_card_numbers_in_bytes(data)
    assert found
    assert len(masked) == len(data)
    assert masked.startswith(b"\x02************4242 x\xfe\x01")
    assert mask_card_numbers_in_bytes(raw[:3]) == (raw[:3], False)


def test_mask_value_walks_messages_and_spares_exempt_ids() -> None:
    message = {"command_id": CARD, "customer_id": f"c-{CARD}", "prefs": {"a": [CARD]}}
    masked = mask_value(message, frozenset({"command_id"}))
    assert masked == {
        "command_id": CARD,
        "customer_id": "c-************4242",
        "prefs": {"a": ["************4242"]},
    }


def test_safe_repr_never_echoes_a_card_number() -> None:
    assert safe_repr("2025-01-01") == "'2025-01-01'"
    assert "4242" not in safe_repr(f"{CARD}T00:00")


@given(st.uuids(), st.text(max_size=40), st.sampled_from(["email", "in_app", "webhook"]))
def test_ids_the_ledger_makes_are_never_refused_as_card_numbers(
    key: uuid.UUID, event: str, channel: str
) -> None:
    """Every command refuses a field holding a card number, so an id the ledger makes itself
    (a message, a webhook endpoint or delivery, a dispatcher's name) must never look like
    one: hex and base-32 digits can line up into a Luhn-valid run (CI once refused a `we_`
    endpoint id); letters never do."""
    made = [
        in_letters("we_", key, 16),
        in_letters(f"notifier-{2**22}-", key, 6),
        delivery_id_for(event, in_letters("we_", key, 16)),
        message_id(event or str(key), channel, "receipt"),
    ]
    for made_id in made:
        assert not find_card_number(made_id), made_id
    assert len(set(made)) == len(made)


def test_a_hex_id_with_a_card_number_in_it_is_what_letters_avoid() -> None:
    """The failure the letters avoid, for real: a UUID whose hex holds a Luhn-valid run."""
    key = uuid.UUID("4242424242424242" + "abcdefabcdefabcd")
    assert find_card_number(key.hex)
    assert not find_card_number(in_letters("we_", key))
