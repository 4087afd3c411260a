"""Money as integer minor units: exact arithmetic, one rounding rule, never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from domain.errors import InvalidAmount, InvalidInput, UnknownCurrency
from domain.limits import quote

CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        ("USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK"),
        2,
    ),
    **dict.fromkeys(
        ("PLN", "CZK", "HUF", "INR", "BRL", "MXN", "ZAR", "SGD", "HKD", "CNY"),
        2,
    ),
    **dict.fromkeys(("JPY", "KRW", "CLP", "VND", "ISK"), 0),
    **dict.fromkeys(("KWD", "BHD", "JOD", "OMR", "TND"), 3),
}

PPM = 1_000_000
_CODE_RE = re.compile(r"[A-Z]{3}")
# ASCII digits only: str.isdigit() and \d would also accept e.g. Arabic-Indic digits.
_AMOUNT_RE = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?")
_MAX_AMOUNT_CHARS = 40  # far beyond any real amount; keeps int() away from huge inputs


def exponent(currency: str) -> int:
    """Number of minor-unit digits of an ISO 4217 code: amounts are stored scaled by it."""
    if not isinstance(currency, str) or not _CODE_RE.fullmatch(currency):
        raise UnknownCurrency(
            f"currency must be a 3-letter ISO 4217 code such as USD, got {quote(currency)}"
        )
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {quote(currency)}") from None


def _require_int(value: object, what: str, error: type[InvalidInput] = InvalidInput) -> int:
    """Reject bools and floats up front: they would silently pass as ints or lose cents."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units tied to its currency, checked on creation; printed with both."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        _require_int(self.amount, "amount", InvalidAmount)
        exponent(self.currency)

    def __str__(self) -> str:
        return f"{self.currency} {format_amount(self.amount, self.currency)}"


def parse_amount(text: str, currency: str, *, allow_negative: bool = False) -> int:
    """Turn a human decimal string into minor units exactly, refusing anything ambiguous."""
    exp = exponent(currency)
    if not isinstance(text, str):
        raise InvalidAmount(f"amount must be text, got {type(text).__name__}")
    stripped = text.strip()
    match = _AMOUNT_RE.fullmatch(stripped) if len(stripped) <= _MAX_AMOUNT_CHARS else None
    if match is None:
        raise InvalidAmount(f"not a plain decimal amount: {quote(text)} (e.g. 10.00)")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    if len(frac) > exp:
        raise InvalidAmount(f"{currency} has {exp} decimal places; {quote(text)} has {len(frac)}")
    minor = int(whole) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
    if sign == "-":
        if not allow_negative:
            raise InvalidAmount(f"amount must not be negative: {quote(text)}")
        minor = -minor
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Render minor units with the currency's decimals and no code ("10.00")."""
    exp = exponent(currency)
    _require_int(minor, "amount", InvalidAmount)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def round_half_up(numerator: int, denominator: int) -> int:
    """THE rounding rule: nearest integer, ties away from zero, in exact integer arithmetic."""
    _require_int(numerator, "numerator")
    _require_int(denominator, "denominator")
    if denominator == 0:
        raise InvalidInput("cannot divide by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def prorate(amount: int, part: int, whole: int) -> int:
    """Share of an amount for part of a whole (seconds, days), rounded once at the end."""
    _require_int(part, "part")
    _require_int(whole, "whole")
    if whole <= 0:
        raise InvalidInput(f"whole must be positive, got {whole}")
    if not 0 <= part <= whole:
        raise InvalidInput(f"part must be within 0..{whole}, got {part}")
    return round_half_up(amount * part, whole)


def apply_ppm(amount: int, rate_ppm: int) -> int:
    """Apply a parts-per-million rate (tax) without floats: 20% is 200_000 ppm."""
    _require_int(rate_ppm, "rate_ppm")
    return round_half_up(amount * rate_ppm, PPM)


_PERCENT_RE = re.compile(r"\+?([0-9]+(?:\.[0-9]+)?)\s*%?")


def parse_percent_ppm(text: str) -> int:
    """Read "20" / "20%" / "8.875" as ppm exactly, so tax rates never pass through a float."""
    if not isinstance(text, str):
        raise InvalidInput(f"percent must be text, got {type(text).__name__}")
    stripped = text.strip()
    match = _PERCENT_RE.fullmatch(stripped) if len(stripped) <= _MAX_AMOUNT_CHARS else None
    if match is None:
        raise InvalidInput(f"not a percentage between 0 and 100: {quote(text)}")
    ppm = Decimal(match.group(1)) * 10_000  # 1% == 10_000 ppm; Decimal from str is exact
    if ppm != ppm.to_integral_value():
        raise InvalidInput(f"{quote(text)} has more than 4 decimals (finer than 1 ppm)")
    value = int(ppm)
    if value > PPM:
        raise InvalidInput(f"percent must not exceed 100: {quote(text)}")
    return value


def format_percent_ppm(rate_ppm: int) -> str:
    """Render a ppm rate as a percent without trailing zeros ("20", "8.875") for descriptions."""
    _require_int(rate_ppm, "rate_ppm")
    sign = "-" if rate_ppm < 0 else ""
    whole, frac = divmod(abs(rate_ppm), 10_000)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{f'{frac:04d}'.rstrip('0')}"
