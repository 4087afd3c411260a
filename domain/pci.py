"""Keep card numbers out: the ledger stores gateway tokens only, so PCI scope stays elsewhere."""

from __future__ import annotations

import re

from domain.errors import CardNumberRefused

MIN_PAN, MAX_PAN = 13, 19
# Digits joined by at most one space or dash between them: "4242 4242-4242 4242" is one run.
_DIGIT_RUN = re.compile(r"[0-9](?:[ -]?[0-9])*")
_MAX_DEPTH = 32


def luhn_valid(digits: str) -> bool:
    """The mod-10 checksum every payment card number carries."""
    if not digits or not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_card_number(text: str) -> bool:
    """True if any 13-19 digit window of the text (spaces/dashes allowed) passes Luhn."""
    if not isinstance(text, str):
        return False
    for match in _DIGIT_RUN.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        if len(digits) >= MIN_PAN and _any_luhn_window(digits):
            return True
    return False


def _any_luhn_window(digits: str) -> bool:
    """Check every 13-19 digit window in linear time using prefix sums of the Luhn terms."""
    # prefix[p][j]: Luhn sum of digits[:j] when positions of parity p are the doubled ones.
    # A window ending at index e doubles the positions whose parity differs from e's.
    prefix: tuple[list[int], list[int]] = ([0], [0])
    for j, ch in enumerate(digits):
        d = ord(ch) - 48
        doubled = d * 2 - 9 if d > 4 else d * 2
        for p in (0, 1):
            prefix[p].append(prefix[p][-1] + (doubled if j % 2 == p else d))
    n = len(digits)
    for end in range(MIN_PAN, n + 1):  # window is digits[start:end], last index end - 1
        sums = prefix[end % 2]  # parity of end-1 is q; doubled parity 1-q == end % 2
        for length in range(MIN_PAN, min(MAX_PAN, end) + 1):
            if (sums[end] - sums[end - length]) % 10 == 0:
                return True
    return False


looks_like_card_number = find_card_number


def _scan(value: object, name: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        if find_card_number(value):
            raise CardNumberRefused(_message(name))
    elif isinstance(value, dict):
        for key, item in value.items():
            if find_card_number(str(key)):  # never echo the key: it is the card number
                raise CardNumberRefused(_message(name or "(key)"))
            _scan(item, f"{name}.{key}" if name else str(key), depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _scan(item, f"{name}[{i}]", depth + 1)


def _message(name: str) -> str:
    return (
        f"field '{name}' looks like a payment card number; "
        "send a gateway token such as tok_visa instead"
    )


def refuse_card_numbers(fields: dict[str, object]) -> None:
    """Refuse any command whose fields carry a card number, naming the field but never the value."""
    _scan(fields, "", 0)
