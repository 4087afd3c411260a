"""One hierarchy of named domain errors: the CLI prints them, the Kafka path rejects with them."""

from __future__ import annotations

from domain.cards import mask_card_numbers


class LedgerError(Exception):
    """Base of every rule the ledger refuses to break; `code` is stable for machines.

    Its message never carries a payment card number: whatever a rule quotes back is masked
    (last four digits kept), so no error line, log or rejection can leak one.
    """

    code = "ledger_error"

    def __init__(self, message: str = "") -> None:
        super().__init__(mask_card_numbers(" ".join(str(message).split())))


class InvalidInput(LedgerError):
    code = "invalid_input"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class UnknownCurrency(InvalidInput):
    code = "unknown_currency"


class InvalidInterval(InvalidInput):
    code = "invalid_interval"


class InvalidPricing(InvalidInput):
    code = "invalid_pricing"


class CardNumberRefused(InvalidInput):
    """A payment card number appeared in some field: PCI scope stays out."""

    code = "card_number_refused"


class NotFound(LedgerError):
    code = "not_found"


class UnknownPlan(NotFound):
    code = "unknown_plan"


class UnknownCustomer(NotFound):
    code = "unknown_customer"


class UnknownSubscription(NotFound):
    code = "unknown_subscription"


class UnknownCoupon(NotFound):
    code = "unknown_coupon"


class AlreadyExists(LedgerError):
    code = "already_exists"


class PlanRetired(LedgerError):
    code = "plan_retired"


class InvalidTransition(LedgerError):
    """The subscription's state does not allow this command now."""

    code = "invalid_transition"


class CustomerErased(LedgerError):
    code = "customer_erased"


class IdempotencyConflict(LedgerError):
    """A command id already used for a different request: Stripe's rule for idempotency keys."""

    code = "idempotency_conflict"


class TimeWentBackwards(LedgerError):
    """An effective time earlier than what the aggregate has already recorded."""

    code = "time_went_backwards"
