"""Which events become which messages, on which channels, for whom: the notification rules.

A message is one template sent to one customer about one event, on one channel; its id is
derived from the event id, the channel and the template, so a re-read of the same event
(a rebuild, a duplicate from Kafka) makes the very same message, never a second one.

Who gets what (the customer's preferences, `notify.<name>` = on|off, all on by default):
- `notify.email`, `notify.in_app`, `notify.webhook` switch a channel off;
- `notify.reminders` switches off renewal reminders and trial-ending notices;
- receipts and legal notices (cancellation, plan change, credit note, refund) always go out
  by email, whatever the preferences say; their other channels follow the preferences.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import NAMESPACE_URL, uuid5

from domain.errors import InvalidInput
from domain.identity import in_letters

CHANNELS = ("email", "in_app", "webhook")
EMAIL, IN_APP, WEBHOOK = CHANNELS

LEGAL, REMINDER, SERVICE = "legal", "reminder", "service"  # categories of message
OFF = frozenset({"off", "0", "false", "no", "never"})


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of message: its template, its category, and the webhook type of its event."""

    template: str
    category: str
    webhook_type: str | None  # the webhooks worker's type for its event (README's table)


KINDS: dict[str, Kind] = {
    k.template: k
    for k in (
        Kind("welcome", SERVICE, "customer.created"),
        Kind("receipt", LEGAL, "invoice.paid"),
        Kind("payment_failed", SERVICE, "invoice.payment_failed"),
        Kind("renewal_reminder", REMINDER, "invoice.upcoming"),
        Kind("trial_ending", REMINDER, None),
        Kind("plan_changed", LEGAL, "subscription.updated"),
        Kind("cancellation_scheduled", LEGAL, "subscription.canceled"),
        Kind("cancellation_confirmed", LEGAL, "subscription.churned"),
        Kind("credit_note", LEGAL, "credit_note.created"),
        Kind("refund", LEGAL, None),
    )
}

# event name -> the message kind it makes (Churned: only a customer's own or a failed
# payment's end; an erased customer's subscriptions end without a word to anyone)
EVENT_KINDS: dict[str, str] = {
    "Customer.Registered": "welcome",
    "Subscription.PaymentSucceeded": "receipt",
    "Subscription.PaymentFailed": "payment_failed",
    "Subscription.RenewalReminderIssued": "renewal_reminder",
    "Subscription.TrialEndingSoon": "trial_ending",
    "Subscription.PlanChanged": "plan_changed",
    "Subscription.CancellationScheduled": "cancellation_scheduled",
    "Subscription.Churned": "cancellation_confirmed",
    "Subscription.CreditNoteIssued": "credit_note",
    "Subscription.RefundSucceeded": "refund",
}
SILENT_CHURN = frozenset({"customer_erased"})

# Stripe's decline codes, in the words a customer reads
DECLINE_WORDS: dict[str, str] = {
    "card_declined": "your card was declined",
    "generic_decline": "your card was declined",
    "insufficient_funds": "your card has insufficient funds",
    "expired_card": "your card has expired",
    "incorrect_cvc": "your card's security code is incorrect",
    "processing_error": "an error occurred while processing your card",
    "lost_card": "your card was declined",
    "stolen_card": "your card was declined",
    "do_not_honor": "your card was declined by your bank",
}


def decline_in_words(code: str | None, message: str | None = None) -> str:
    """Why a charge failed, for the customer: Stripe's code in words, else the gateway's."""
    if code and code in DECLINE_WORDS:
        return DECLINE_WORDS[code]
    if message:
        return message
    return "your payment could not be completed"


def message_id(event_id: str, channel: str, template: str) -> str:
    """Deterministic: the same event, channel and template always make the same message.

    `msg_` and a UUID in letters only (`in_letters`): never refused as a card number.
    """
    key = uuid5(NAMESPACE_URL, f"subledger:message:{event_id}:{channel}:{template}")
    return in_letters("msg_", key)


def preference_on(preferences: dict[str, object], name: str) -> bool:
    """`notify.<name>` is on unless the customer said off (off, 0, false, no, never)."""
    value = preferences.get(f"notify.{name}")
    return not (isinstance(value, str) and value.strip().lower() in OFF)


def wanted(template: str, channel: str, preferences: dict[str, object]) -> tuple[bool, str]:
    """Whether the customer gets this message on this channel, and why not if not."""
    kind = KINDS[template]
    if kind.category == LEGAL and channel == EMAIL:
        return True, ""  # receipts and legal notices always go out
    if kind.category == REMINDER and not preference_on(preferences, "reminders"):
        return False, "the customer turned reminders off (notify.reminders)"
    if not preference_on(preferences, channel):
        return False, f"the customer turned this channel off (notify.{channel})"
    return True, ""


def channels_of(template: str) -> tuple[str, ...]:
    """The channels a message of this kind goes on: the webhook channel only for an event
    the webhooks worker sends (it has a webhook type)."""
    if KINDS[template].webhook_type is None:
        return (EMAIL, IN_APP)
    return CHANNELS


def check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}")


def check_template(template: str) -> None:
    if template not in KINDS:
        raise InvalidInput(f"template must be one of {', '.join(sorted(KINDS))}")


def check_header(value: str, what: str) -> str:
    """A header value is one line: CR or LF in it could start a header of its own."""
    if not isinstance(value, str) or "\r" in value or "\n" in value or "\0" in value:
        raise InvalidInput(f"{what} must be one line (no line breaks)")
    return value


@dataclass(frozen=True, slots=True)
class Email:
    """One email as the dispatcher hands it to the mailer; every header checked one line."""

    message_id: str  # the Message-ID header, <...@...>, from the outbox message id
    sender: str
    recipient: str
    subject: str
    body: str
    recipient_name: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        check_header(self.message_id, "the Message-ID")
        check_header(self.sender, "the sender address")
        check_header(self.recipient, "the recipient address")
        check_header(self.recipient_name, "the recipient's name")
        check_header(self.subject, "the subject")
        for name, value in self.headers:
            check_header(name, "a header's name")
            check_header(value, f"header {name}")
