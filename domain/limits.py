"""The ranges every input must fall in, so every amount the ledger derives fits its books.

Every figure the ledger stores is a signed 64-bit count of minor units (SQLite's INTEGER,
PostgreSQL's BIGINT, Avro's long: at most 9.2 x 10^18). The bounds below make whatever the
ledger derives from accepted input fit, without any check at the time of use (a renewal at
a new price must never fail): a price or fee is at most MAX_AMOUNT (10^10 minor units,
USD 100,000,000.00), a quantity at most 10^6, a price has at most 20 tiers, so one period's
amount is at most ~10^16; its monthly value (a daily plan: x 365/12) at most ~3.1 x 10^17;
an invoice (recurring line, proration credit and charge, tax of at most 100%) at most
~4 x 10^16. Dates stay between 1970 and 2199, so any period end (at most ten years later)
fits the calendar. Each check raises InvalidInput naming the field and the range, never
quoting the value.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from domain.cards import safe_repr
from domain.errors import InvalidAmount, InvalidInput

INT64_MAX = 2**63 - 1
MAX_AMOUNT = 10**10  # minor units: a price, a fee, a coupon's amount off, a payment
MAX_QUANTITY = 10**6  # seats or units of one subscription
MAX_TIERS = 20
MAX_INVOICE = 10**17  # minor units: what one invoice can come to, so what one payment can be
MAX_TRIAL_DAYS = 730
MAX_COUPON_PERIODS = 120
MAX_INTERVAL_COUNT = {"day": 3660, "week": 522, "month": 120, "year": 10}  # ten years
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_ID = 200  # characters of an identifier
MAX_TEXT = 1000  # characters of a name, an email, a feature, a reason, a reference
MAX_FEATURES = 100
MAX_PREFERENCES = 50


def quote(value: object, limit: int = 40) -> str:
    """A value for an error message: short, one line, never a card number."""
    text = safe_repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(value: object, what: str, low: int, high: int) -> int:
    """An integer within [low, high]: bools, floats and out-of-range values are refused."""
    if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise InvalidInput(f"{what} must be a whole number from {low:,} to {high:,}")
    return value  # type: ignore[return-value]


def check_amount(value: object, what: str, *, low: int = 0, high: int = MAX_AMOUNT) -> int:
    """A count of minor units within [low, high] (by default, what a price may be)."""
    if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise InvalidAmount(f"{what} must be from {low:,} to {high:,} minor units (e.g. cents)")
    return value  # type: ignore[return-value]


def check_time(value: object, what: str = "the effective time") -> datetime:
    """A timezone-aware time between EARLIEST and LATEST."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware time (UTC)")
    if not EARLIEST <= value <= LATEST:
        raise InvalidInput(f"{what} must be between 1970-01-01 and 2199-12-31 (UTC)")
    return value


_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def has_control(text: str, *, format_chars: bool = True) -> bool:
    """Control characters (C0, DEL, C1), bidi overrides and lone surrogates (no text can
    hold one: it cannot be encoded); with `format_chars`, every Unicode format character
    too (zero-width joiners have no place in an identifier, but a Persian name needs its
    zero-width non-joiner)."""
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs") or ch in _BIDI or (format_chars and category == "Cf"):
            return True
    return False


def check_id(value: object, what: str) -> str:
    """Identifiers: 1-200 characters, not blank, no control characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} is required (1-{MAX_ID} characters, not blank)")
    if len(value) > MAX_ID:
        raise InvalidInput(f"{what} must be at most {MAX_ID} characters")
    if has_control(value):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def check_text(value: object, what: str, *, limit: int = MAX_TEXT, blank: bool = False) -> str:
    """One line of text: at most `limit` characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    if not blank and not value.strip():
        raise InvalidInput(f"{what} must not be blank")
    if len(value) > limit:
        raise InvalidInput(f"{what} must be at most {limit:,} characters")
    if has_control(value, format_chars=False):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


# ISO 3166-1 alpha-2: the officially assigned codes (249), as of 2024.
COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - the list as ISO prints it
)


def check_country(value: object, what: str = "country") -> str:
    if not isinstance(value, str) or value not in COUNTRIES:
        raise InvalidInput(
            f"{what} must be an assigned ISO 3166-1 alpha-2 code in capitals, such as US or GB"
        )
    return value
