"""Finding and masking payment card numbers in text: the mechanics behind `domain.pci`.

It imports nothing of the domain, so `domain.errors` can mask every message with it.
A card number is 13-19 digits passing the Luhn check and not starting with 0, in any
notation people use: digits separated by runs of up to three characters that are neither
letters nor digits (spaces, tabs, dots, dashes, slashes, underscores, ...), after Unicode
normalisation (NFKC), so full-width and other script digits count as digits too. A letter
ends a run. Every 13-19 digit window of a run is checked, so a number hidden among other
digits is found as well.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

MIN_PAN, MAX_PAN = 13, 19
MAX_SEPARATORS = 3  # non-alphanumeric characters allowed between two digits of one number
KEEP = 4  # digits a masked number keeps, as receipts do: ************4242
MASK = "*"
MAX_DEPTH = 32  # nesting levels of a decoded message searched


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


def _classify(ch: str) -> str | None:
    """The digits a character stands for ("" for a separator), or None for a letter."""
    if "0" <= ch <= "9":
        return ch
    if ch.isascii():
        return None if ch.isalpha() else ""
    normal = unicodedata.normalize("NFKC", ch)
    digits = [unicodedata.decimal(n, None) for n in normal]
    if normal and all(d is not None for d in digits):
        return "".join(str(d) for d in digits)
    return None if any(n.isalnum() for n in normal) else ""


def _runs(text: str) -> Iterator[tuple[str, list[int]]]:
    """Each run of digits (joined by short separators) with the text index of every digit."""
    digits: list[str] = []
    where: list[int] = []
    gap = 0
    for index, ch in enumerate(text):
        kind = _classify(ch)
        if kind:
            if gap > MAX_SEPARATORS and digits:
                yield "".join(digits), where
                digits, where = [], []
            for d in kind:
                digits.append(d)
                where.append(index)
            gap = 0
        elif kind == "":
            gap += 1
        else:
            if digits:
                yield "".join(digits), where
            digits, where, gap = [], [], 0
    if digits:
        yield "".join(digits), where


def _luhn_windows(digits: str) -> Iterator[tuple[int, int]]:
    """Every (start, end) with MIN_PAN <= end - start <= MAX_PAN whose digits pass Luhn
    and do not start with 0 (no card number does: its first digit names a card industry,
    and 0 is none; without this, any run of 13 zeros would pass).

    Linear in the run's length: prefix sums of the Luhn terms under both parities.
    """
    n = len(digits)
    if n < MIN_PAN:
        return
    # prefix[p][j]: Luhn sum of digits[:j] when positions of parity p are the doubled ones.
    prefix: tuple[list[int], list[int]] = ([0], [0])
    for j, ch in enumerate(digits):
        d = ord(ch) - 48
        doubled = d * 2 - 9 if d > 4 else d * 2
        for p in (0, 1):
            prefix[p].append(prefix[p][-1] + (doubled if j % 2 == p else d))
    for end in range(MIN_PAN, n + 1):  # the window's last digit is end - 1
        sums = prefix[end % 2]  # the doubled positions are those of end's parity
        for length in range(MIN_PAN, min(MAX_PAN, end) + 1):
            start = end - length
            if (sums[end] - sums[start]) % 10 == 0 and digits[start] != "0":
                yield start, end


_NO_ASCII_DIGITS = str.maketrans("", "", "0123456789")


def _too_few_digits(text: str) -> bool:
    """ASCII text with fewer than MIN_PAN digits holds no card number: most text, decided
    at C speed (other scripts' digits may hide in non-ASCII text: that is scanned)."""
    return text.isascii() and len(text) - len(text.translate(_NO_ASCII_DIGITS)) < MIN_PAN


def find_card_number(text: object) -> bool:
    """True if the text holds a card number in any notation (see the module docstring)."""
    if not isinstance(text, str) or _too_few_digits(text):
        return False
    return any(next(_luhn_windows(digits), None) for digits, _ in _runs(text))


def mask_card_numbers(text: str) -> str:
    """The text with every card number's digits but its last four replaced by '*'."""
    masked = _masked_indexes(text)
    if not masked:
        return text
    return "".join(MASK if i in masked else ch for i, ch in enumerate(text))


def _masked_indexes(text: str) -> set[int]:
    masked: set[int] = set()
    if _too_few_digits(text):
        return masked
    for digits, where in _runs(text):
        for start, end in _luhn_windows(digits):
            masked.update(where[start : end - KEEP])
    return masked


def mask_card_numbers_in_bytes(data: bytes) -> tuple[bytes, bool]:
    """Mask card numbers inside raw bytes without changing their length: (bytes, found).

    For messages that cannot be decoded: UTF-8 text is masked in place (a three-byte
    full-width digit becomes three '*'), other bytes are left as they are, so whatever
    framing the bytes had keeps its offsets.
    """
    text = data.decode("utf-8", "surrogateescape")
    masked = _masked_indexes(text)
    if not masked:
        return data, False
    out = bytearray()
    for i, ch in enumerate(text):
        raw = ch.encode("utf-8", "surrogateescape")
        out += MASK.encode() * len(raw) if i in masked else raw
    return bytes(out), True


def mask_value(value: object, exempt: frozenset[str] = frozenset(), depth: int = 0) -> object:
    """A copy of a decoded message (dicts, lists, strings) with card numbers masked.

    Keys named in `exempt` keep their values (command and correlation ids are exempt from
    the card-number rule: numeric ids pass the Luhn check one time in ten).
    """
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, dict):
        return {
            mask_card_numbers(k) if isinstance(k, str) else k: (
                v if k in exempt else mask_value(v, exempt, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(mask_value(v, exempt, depth + 1) for v in value)
    return value


def safe_repr(value: object) -> str:
    """A value quoted for an error message, unless it holds a card number: never echo one."""
    if find_card_number(str(value)):
        return "(a value that looks like a payment card number)"
    return repr(value)
