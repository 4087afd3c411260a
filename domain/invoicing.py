"""Invoice arithmetic: lines, proration by the second, coupons, tax and customer credit.

Credit is the customer's, per currency (`domain.customer.Customer`): `compute_totals`
spends the balance it is given and says what is left, whichever subscription the invoice is
for. Credit notes reuse `Line` (kind `credit`, plus `tax`), with positive amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.errors import CurrencyMismatch, InvalidInput
from domain.limits import MAX_AMOUNT, MAX_COUPON_PERIODS
from domain.money import PPM, apply_ppm, exponent, format_percent_ppm, prorate, round_half_up
from domain.periods import require_utc, seconds_between

LINE_KINDS = ("recurring", "proration_credit", "proration_charge", "discount", "tax", "credit")
DURATIONS = ("once", "repeating", "forever")
BASIS_POINTS = 10_000


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time_or_none(value: object, what: str) -> datetime | None:
    """Accept datetimes (or ISO strings from a transcoder) and insist on UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput(f"{what} is not an ISO 8601 time: {value!r}") from exc
    return require_utc(value, what)


@dataclass(frozen=True, slots=True)
class Line:
    """One signed invoice line; credits are negative so totals are plain sums."""

    kind: str
    description: str
    amount: int
    period_start: datetime | None = None
    period_end: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in LINE_KINDS:
            raise InvalidInput(f"line kind must be one of {', '.join(LINE_KINDS)}: {self.kind!r}")
        if not isinstance(self.description, str):
            raise InvalidInput(f"line description must be text: {self.description!r}")
        if not _is_int(self.amount):
            raise InvalidInput(f"line amount must be an integer: {self.amount!r}")
        start = _time_or_none(self.period_start, "period_start")
        end = _time_or_none(self.period_end, "period_end")
        if start is not None and end is not None and end < start:
            raise InvalidInput("line period ends before it starts")
        object.__setattr__(self, "period_start", start)
        object.__setattr__(self, "period_end", end)

    def to_dict(self) -> dict[str, object]:
        """Event form; datetimes stay datetimes because the event store transcodes them."""
        return {
            "kind": self.kind,
            "description": self.description,
            "amount": self.amount,
            "period_start": self.period_start,
            "period_end": self.period_end,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Line:
        """Inverse of to_dict, validating again because stored data is input too."""
        try:
            return cls(
                data["kind"],  # type: ignore[arg-type]
                data["description"],  # type: ignore[arg-type]
                data["amount"],  # type: ignore[arg-type]
                data.get("period_start"),  # type: ignore[arg-type]
                data.get("period_end"),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"malformed invoice line: {data!r}") from exc


def proration_lines(
    old_amount: int,
    new_amount: int,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
    old_desc: str,
    new_desc: str,
    note: str = "",
) -> list[Line]:
    """Credit the unused old plan and charge the new one for the rest of the period, per second.

    The amounts are the period's prices as the customer pays them (`period_price`): in a
    discounted period both are after the coupon; `note` (", less coupon X") says so.
    """
    require_utc(period_start, "period_start")
    require_utc(period_end, "period_end")
    require_utc(at, "at")
    if not period_start <= at <= period_end:
        raise InvalidInput(f"{at.isoformat()} is outside the period being prorated")
    whole = seconds_between(period_start, period_end)
    if whole <= 0:
        raise InvalidInput("cannot prorate over a period shorter than one second")
    unused = seconds_between(at, period_end)
    when = at.date().isoformat()
    lines = [
        Line(
            "proration_credit",
            f"Unused time on {old_desc} after {when}{note}",
            -prorate(old_amount, unused, whole),
            at,
            period_end,
        ),
        Line(
            "proration_charge",
            f"Remaining time on {new_desc} after {when}{note}",
            prorate(new_amount, unused, whole),
            at,
            period_end,
        ),
    ]
    return [line for line in lines if line.amount != 0]


@dataclass(frozen=True, slots=True)
class Coupon:
    """A discount: a percentage (basis points) or a fixed amount, for once, n periods or forever."""

    code: str
    percent_off_bp: int | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration: str = "once"
    periods: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip():
            raise InvalidInput("a coupon needs a code")
        if (self.percent_off_bp is None) == (self.amount_off is None):
            raise InvalidInput("a coupon takes exactly one of a percent off or an amount off")
        if self.percent_off_bp is not None:
            bp = self.percent_off_bp
            if not _is_int(bp) or not 1 <= bp <= BASIS_POINTS:
                raise InvalidInput(
                    "a coupon's percent off must be from 0.01% to 100%"
                    " (percent_off_bp from 1 to 10,000 basis points)"
                )
            if self.currency is not None:
                raise InvalidInput("a percent-off coupon has no currency")
        else:
            if not _is_int(self.amount_off) or not 1 <= self.amount_off <= MAX_AMOUNT:  # type: ignore[operator]
                raise InvalidInput(
                    f"a coupon's amount off must be from 1 to {MAX_AMOUNT:,} minor units"
                )
            if self.currency is None:
                raise InvalidInput("an amount-off coupon needs a currency")
            exponent(self.currency)
        if self.duration not in DURATIONS:
            raise InvalidInput(f"a coupon's duration must be one of {', '.join(DURATIONS)}")
        if self.duration == "repeating":
            if not _is_int(self.periods) or not 1 <= self.periods <= MAX_COUPON_PERIODS:  # type: ignore[operator]
                raise InvalidInput(
                    f"a repeating coupon lasts from 1 to {MAX_COUPON_PERIODS} periods"
                )
        elif self.periods is not None:
            raise InvalidInput(
                f"only a repeating coupon lasts a number of periods (this one is {self.duration})"
            )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able form for events."""
        return {
            "code": self.code,
            "percent_off_bp": self.percent_off_bp,
            "amount_off": self.amount_off,
            "currency": self.currency,
            "duration": self.duration,
            "periods": self.periods,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Coupon:
        """Inverse of to_dict, validating again because stored data is input too."""
        try:
            return cls(
                data["code"],  # type: ignore[arg-type]
                data.get("percent_off_bp"),  # type: ignore[arg-type]
                data.get("amount_off"),  # type: ignore[arg-type]
                data.get("currency"),  # type: ignore[arg-type]
                data.get("duration", "once"),  # type: ignore[arg-type]
                data.get("periods"),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput("a coupon needs a code and a percent or an amount off") from exc


def discount_for(coupon: Coupon, subtotal: int, currency: str) -> int:
    """Signed (<= 0) discount for a subtotal; never more than the subtotal itself."""
    exponent(currency)
    if not _is_int(subtotal):
        raise InvalidInput(f"subtotal must be an integer: {subtotal!r}")
    if coupon.amount_off is not None and coupon.currency != currency:
        raise CurrencyMismatch(
            f"coupon {coupon.code} is in {coupon.currency}, invoice in {currency}"
        )
    if subtotal <= 0:
        return 0
    if coupon.percent_off_bp is not None:
        off = round_half_up(subtotal * coupon.percent_off_bp, BASIS_POINTS)
    else:
        off = coupon.amount_off  # type: ignore[assignment]
    return -min(off, subtotal)  # type: ignore[type-var]


def period_price(amount: int, coupon: Coupon | None, currency: str) -> int:
    """What a full period at list price `amount` costs after `coupon` (none: the list price).

    The one figure proration takes in a discounted period: the unused-time credit is a share
    of what the customer paid, the remaining-time charge a share of what they will pay.
    """
    if coupon is None:
        return amount
    return amount + discount_for(coupon, amount, currency)


@dataclass(frozen=True, slots=True)
class Totals:
    """What an invoice adds up to and how the customer's credit balance (in its currency)
    moves: `credit_applied` is spent from it, a negative total (a downgrade) adds to it."""

    subtotal: int
    tax: int
    total: int
    credit_applied: int
    amount_due: int
    credit_balance_after: int


def _check_rate(rate_ppm: object) -> int:
    if not _is_int(rate_ppm) or not 0 <= rate_ppm <= PPM:  # type: ignore[operator]
        raise InvalidInput(f"tax rate must be an integer ppm in 0..{PPM}, got {rate_ppm!r}")
    return rate_ppm  # type: ignore[return-value]


def compute_totals(lines: list[Line], tax_rate_ppm: int, credit_balance: int) -> Totals:
    """Sum lines, add tax, then spend the customer's credit (or bank a net credit) so nothing
    is lost; `credit_balance` is the customer's balance in the invoice's currency."""
    _check_rate(tax_rate_ppm)
    if not _is_int(credit_balance) or credit_balance < 0:
        raise InvalidInput(f"credit balance must be a non-negative integer: {credit_balance!r}")
    subtotal = sum(line.amount for line in lines if line.kind != "tax")
    tax = apply_ppm(subtotal, tax_rate_ppm)
    total = subtotal + tax
    if total < 0:
        return Totals(subtotal, tax, total, 0, 0, credit_balance - total)
    applied = min(credit_balance, total)
    return Totals(subtotal, tax, total, applied, total - applied, credit_balance - applied)


def tax_line(subtotal: int, rate_ppm: int, country: str) -> Line | None:
    """The visible tax line matching compute_totals' tax, or None when no tax applies."""
    _check_rate(rate_ppm)
    if rate_ppm == 0:
        return None
    return Line(
        "tax", f"Tax {format_percent_ppm(rate_ppm)}% ({country})", apply_ppm(subtotal, rate_ppm)
    )


def credit_note_lines(
    amount: int, invoice: str, invoice_total: int, invoice_tax: int, *, refund: bool
) -> list[Line]:
    """A credit note's lines: `amount` split into net and tax in the invoice's proportion.

    The tax share is the invoice's tax x amount / total, rounded half up, so crediting a
    whole invoice credits its tax exactly; amounts are positive (what is given back).
    """
    tax = 0
    if invoice_tax and invoice_total > 0:
        tax = round_half_up(amount * invoice_tax, invoice_total)
    what = f"Refund of {invoice}" if refund else f"Credit to balance for {invoice}"
    lines = [Line("credit", what, amount - tax)]
    if tax:
        lines.append(Line("tax", f"Tax {'refunded' if refund else 'credited'} ({invoice})", tax))
    return lines
