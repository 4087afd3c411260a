"""PCI guard: card numbers are refused anywhere in a command, without echoing them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import CardNumberRefused
from domain.pci import find_card_number, looks_like_card_number, luhn_valid, refuse_card_numbers

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
    ],
)
def test_card_numbers_are_found(text: str) -> None:
    assert find_card_number(text)
    assert looks_like_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "tok_visa",
        "+1 (415) 555-2671",
        "+44 20 7946 0958",
        "1234567890123",  # 13 digits failing Luhn
        "424242424242",  # 12 digits
        "4242  4242  4242  4242",  # double spaces split the run into short groups
        "2024-01-15T10:00:00Z",
        "order 12345 qty 3",
        "",
    ],
)
def test_ordinary_text_is_not_a_card_number(text: str) -> None:
    assert not find_card_number(text)


@given(st.text(alphabet="0123456789", min_size=13, max_size=60))
def test_window_search_agrees_with_the_obvious_definition(digits: str) -> None:
    expected = any(
        luhn_valid(digits[i : i + n]) for n in range(13, 20) for i in range(len(digits) - n + 1)
    )
    assert find_card_number(digits) == expected


def test_long_digit_runs_are_checked_quickly() -> None:
    assert find_card_number("1" * 100_000) in (True, False)


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
