"""The words of the contract: a doc for every record and every field the generator emits.

Docs live here, not in the domain classes, because the domain's dataclasses carry no
per-field docs and upstream teams read the `.avsc` files, not our Python. The generator
refuses to emit a field without a doc, so a new domain field cannot ship undocumented.
Lookup order for a field: `(owner, field)` then `field`; owner is a command name
(`Subscribe`), an event name (`Subscription.Invoiced`) or a common type (`Pricing`).
"""

from __future__ import annotations

MINOR_UNITS = "Money: a whole number of minor units of the currency (cents for USD), never a float."


def _money(text: str) -> str:
    return f"{text} {MINOR_UNITS}"


# Fields whose value is an amount of money; the generator appends MINOR_UNITS and the
# tests check it is there.
MONEY = frozenset(
    {
        "amount",
        "amount_off",
        "unit_amount",
        "flat_amount",
        "mrr",
        "subtotal",
        "tax",
        "total",
        "credit_applied",
        "amount_due",
        "credit_balance_after",
        "expected_amount",
    }
)

FIELDS: dict[str, str] = {
    # command envelope
    "command_id": "Unique id of the command, chosen by the producer (1-200 characters, no "
    "control characters): the idempotency key. The same id with the same request has one "
    "effect (the first outcome again); the same id with a different request is rejected with "
    "code idempotency_conflict. Exempt from the card-number rule (numeric ids pass Luhn one "
    "time in ten).",
    "at": "Effective time of the command, UTC, 1970-01-01..2199-12-31, to the second: the "
    "ledger never reads a clock. A time before the ledger clock takes effect at the clock "
    "(the requested time kept as metadata requested_at); a later time first moves the clock "
    "there, running what fell due on the way.",
    "actor": "Who asked: a user, a service account or 'scheduler'.",
    "source": "The upstream system that sent the command (e.g. 'billing-portal', 'cli').",
    "implied": "Names of fields the producer filled in with defaults rather than took from "
    "its caller (e.g. ['at'] when the time is 'now'): they are not part of the request an "
    "idempotency key stands for, so a retry with the same command id and a new 'now' is a "
    "duplicate, not a conflict. Usually empty.",
    "correlation_id": "Id tying this command to the wider request it belongs to; null means "
    "the command id itself.",
    # ids
    "plan_id": "External id of the plan (the catalog's own key, e.g. 'pro-monthly').",
    "customer_id": "External id of the customer, chosen upstream.",
    "subscription_id": "External id of the subscription, chosen upstream.",
    "code": "Coupon code, as customers type it.",
    "country": "ISO 3166-1 alpha-2 country code (e.g. 'US', 'GB').",
    "currency": "ISO 4217 currency code (e.g. 'USD', 'EUR', 'JPY').",
    # plans
    "name": "Display name.",
    "pricing": "How the plan turns a quantity into an amount per period.",
    "interval": "How often the plan bills.",
    "interval_count": "How many interval units one billing period spans (3 with 'month' = "
    "quarterly).",
    "trial_days": "Free trial length in days before the first paid period; 0 = no trial.",
    "features": "Feature flags the plan grants, for entitlement checks upstream.",
    "apply_to": "Which subscribers get the new price: 'new' (new subscriptions only), "
    "'at_renewal' (existing ones from their next renewal) or 'immediately' (now, prorated).",
    "price_version": "The plan's price version this change created (1 = the definition).",
    # customers
    "email": "Email address, for invoices and notices (stored encrypted per customer).",
    "payment_token": "Gateway token for the payment method (e.g. 'tok_visa'); never a card "
    "number: card numbers are refused.",
    "preferences": "Free-form notification preferences (e.g. {'email': 'on'}).",
    "personal": "The customer's personal data (name, email, payment token, preferences) as "
    "hex ciphertext under the customer's own key; unreadable once the customer is erased.",
    # coupons and tax
    "percent_off_bp": "Percentage discount in basis points (1000 = 10%); null for an "
    "amount coupon.",
    "amount_off": "Fixed discount per invoice; null for a percentage coupon.",
    "duration": "How long the coupon applies: 'once', 'repeating' (for `periods` periods) "
    "or 'forever'.",
    "periods": "Number of billing periods a 'repeating' coupon applies for; null otherwise.",
    "rate_ppm": "Tax rate in parts per million (200000 = 20%).",
    "terms": "The coupon's terms.",
    # subscriptions
    "status": "The subscription's status after this event: trialing, active, past_due, "
    "paused or canceled.",
    "mrr": "Monthly recurring revenue of the subscription after this event (0 unless active "
    "or past_due), normalised to one month.",
    "quantity": "Number of units (seats) subscribed.",
    "anchor_day": "Day of the month (1-31) to bill on; null = the subscription's start day.",
    "immediately": "True to end the subscription now; false to cancel at the period's end.",
    "plan_version": "The plan's price version the subscription is on.",
    "anchor": "Billing anchor: periods are computed from this instant (UTC).",
    "period_start": "Start of the billing period (UTC, inclusive).",
    "period_end": "End of the billing period (UTC, exclusive).",
    "period_index": "Number of the billing period counted from the anchor (0 = first).",
    "trial_end": "When the free trial ends (UTC); null if the plan has no trial.",
    "coupon_periods_left": "How many more periods the coupon discounts; null = no limit or "
    "no coupon.",
    "number": "Invoice number, gapless across the ledger (INV-000001).",
    "invoice_number": "Number of the invoice being paid (INV-000001).",
    "lines": "The invoice's lines, in order; their amounts sum to the total.",
    "subtotal": "Sum of the lines before tax.",
    "tax": "Tax charged on the subtotal.",
    "total": "Subtotal plus tax.",
    "credit_applied": "Customer credit used to pay this invoice.",
    "amount_due": "What remains to collect: total minus credit applied.",
    "credit_balance_after": "Customer credit left on the subscription after this invoice.",
    "discounted": "Whether a coupon discount applied to the current period.",
    "attempt": "Collection attempt number for this invoice (1 = first).",
    "reference": "Payment reference from the gateway or the payer (e.g. a bank transfer id).",
    "next_retry_at": "When the next collection attempt is scheduled (UTC); null = no more "
    "retries (the subscription churns).",
    "from_plan_id": "The plan the subscription was on before the change.",
    "cancel_at": "When the scheduled cancellation takes effect (UTC): the period's end.",
    "written_off": "Numbers of the open invoices written off by this churn.",
    "renews_at": "When the subscription renews (UTC).",
    "expected_amount": "The recurring amount expected at renewal, before tax and coupons.",
    # bookkeeping
    "first": "First invoice number allocated in this batch (as an integer).",
    "last": "Last invoice number allocated in this batch (as an integer).",
    "command": "Name of the command applied (e.g. 'Subscribe').",
    "outcome": "What applying the command returned, as a JSON object in a string "
    "(EventCodec decodes it back to a dict).",
    # common types
    "model": "Pricing model: 'flat', 'per_unit', 'tiered' (graduated) or 'volume'.",
    "tiers": "Price tiers in ascending order of up_to; empty for flat and per_unit.",
    "up_to": "Upper bound (inclusive) of units in this tier; null = unbounded (last tier).",
    "unit_amount": "Price of each unit in this tier.",
    "flat_amount": "Flat fee added when any unit falls in this tier.",
    "unit": "Interval unit: 'day', 'week', 'month' or 'year'.",
    "count": "Number of units per period (3 with 'month' = quarterly).",
    "description": "Human-readable line text, as printed on the invoice.",
    "extra": "Any other metadata entries, by name.",
    # ---- payments (issue 9): helper-owned section ----
    # ---- credit (issue 9): helper-owned section ----
    # ---- notifications (issue 9): helper-owned section ----
    # ---- webhooks (issue 9): helper-owned section ----
}

OWNED: dict[tuple[str, str], str] = {
    ("DefinePlan", "name"): "Display name of the plan.",
    ("DefinePlan", "interval"): "Interval unit: 'day', 'week', 'month' or 'year'.",
    ("Plan.Defined", "name"): "Display name of the plan.",
    ("RegisterCustomer", "name"): "The customer's full name (stored encrypted).",
    ("UpdateCustomer", "name"): "New full name; null = unchanged.",
    ("UpdateCustomer", "email"): "New email address; null = unchanged.",
    ("UpdateCustomer", "payment_token"): "New gateway token; null = unchanged.",
    ("UpdateCustomer", "country"): "New ISO 3166-1 alpha-2 country code; null = unchanged.",
    ("ChangePlanPrice", "pricing"): "The plan's new pricing.",
    ("Subscribe", "coupon"): "Code of a defined coupon to apply; null = none.",
    ("Subscribe", "quantity"): "Number of units (seats) to subscribe.",
    ("ChangePlan", "quantity"): "New number of units; null = keep the current quantity.",
    ("ChangePlan", "plan_id"): "External id of the plan to move to (may be the current one "
    "with a new quantity).",
    ("Cancel", "reason"): "Why the subscription is canceled (e.g. 'customer_request').",
    ("RecordPayment", "amount"): "Amount received; must equal the invoice's amount due.",
    ("RecordPayment", "currency"): "Currency of the payment: must be the invoice's. Null "
    "(every version-1 message) means the invoice's currency.",
    ("RecordPayment", "reference"): "Reference of the payment (a bank transfer id, a payments "
    "team's ticket): required, not blank.",
    ("CommandReceipt.Applied", "digest"): "SHA-256 (hex) of the command's name and the fields "
    "its caller supplied, so a reused command id with a different request is refused; null "
    "for receipts recorded before digests were kept.",
    ("Subscription.Subscribed", "coupon"): "Terms of the coupon applied at subscription; "
    "null = none.",
    ("Subscription.Invoiced", "reason"): "Why the invoice was issued (e.g. 'subscription_create', "
    "'renewal', 'trial_conversion', 'proration', 'resume', 'reactivation').",
    ("Subscription.Invoiced", "period_start"): "Earliest start among the lines' periods (UTC).",
    ("Subscription.Invoiced", "period_end"): "Latest end among the lines' periods (UTC).",
    ("Subscription.PaymentSucceeded", "amount"): "Amount collected.",
    ("Subscription.PaymentFailed", "amount"): "Amount that failed to collect.",
    ("Subscription.PaymentFailed", "reason"): "Gateway decline reason (e.g. 'card_declined').",
    ("Subscription.PlanChanged", "reason"): "Why the plan changed: 'customer_request' or "
    "'price_change' (a migration to a new price version).",
    ("Subscription.PlanChanged", "quantity"): "Number of units after the change.",
    ("Subscription.QuantityChanged", "quantity"): "Number of units after the change.",
    ("Subscription.CancellationScheduled", "reason"): "Why the cancellation was asked for.",
    ("Subscription.Churned", "kind"): "'voluntary' (canceled) or 'involuntary' (payment "
    "failed with no retries left).",
    ("Subscription.Churned", "reason"): "Why the subscription ended (e.g. 'customer_request', "
    "'payment_failed:card_declined').",
    ("Subscription.Reactivated", "kind"): "'unscheduled' (a scheduled cancellation withdrawn) "
    "or 'restarted' (a canceled subscription started again).",
    ("InvoiceLine", "kind"): "Line kind: 'recurring', 'proration_credit', "
    "'proration_charge', 'discount' (negative) or 'tax'.",
    ("InvoiceLine", "amount"): "Signed line amount: credits and discounts are negative.",
    ("InvoiceLine", "period_start"): "Start of the period the line covers (UTC); null for "
    "tax lines.",
    ("InvoiceLine", "period_end"): "End of the period the line covers (UTC); null for tax lines.",
    ("Pricing", "amount"): "Price per period ('flat') or per unit per period ('per_unit'); "
    "0 for tiered models.",
    ("Event", "event_id"): "Unique, deterministic id of the event (a UUID derived from "
    "aggregate_id and version): a re-published event keeps its id, so use it to deduplicate.",
    ("Event", "aggregate_type"): "Kind of aggregate the event belongs to (e.g. 'Subscription').",
    ("Event", "type"): "Event type within the aggregate (e.g. 'Renewed').",
    ("Event", "aggregate_id"): "UUID of the aggregate (also the Kafka key); the ledger derives "
    "it from the external id (subscription id, customer id...).",
    ("Event", "version"): "Position of the event in its aggregate's history (1 = first); "
    "consecutive per aggregate.",
    ("Event", "at"): "Effective time of the event (UTC, microseconds): the causing command's "
    "time, not the wall clock.",
    ("Event", "meta"): "Who and what caused the event.",
    ("Event", "data"): "The event's own fields.",
    ("Metadata", "command_id"): "Id of the command that caused the event; null for "
    "bookkeeping the ledger does on its own.",
    ("Metadata", "command"): "Name of the command (or internal step) that caused the event.",
    ("Metadata", "correlation_id"): "Correlation id of the causing command.",
    ("Metadata", "actor"): "Who asked for the causing command.",
    ("Metadata", "source"): "Upstream system the causing command came from.",
    # ---- payments (issue 9): helper-owned section ----
    # ---- credit (issue 9): helper-owned section ----
    # ---- notifications (issue 9): helper-owned section ----
    # ---- webhooks (issue 9): helper-owned section ----
}

RECORDS: dict[str, str] = {
    # common
    "Metadata": "Who and what caused an event: the causing command's id, name, correlation "
    "id, actor and source.",
    "Pricing": "A plan price: flat, per unit, or tiered (graduated or volume).",
    "Tier": "One band of a tiered price.",
    "Interval": "A billing interval, e.g. 1 month or 3 months.",
    "Coupon": "A coupon's terms: exactly one of percent_off_bp and amount_off is set.",
    "InvoiceLine": "One signed line of an invoice.",
    # commands
    "DefinePlan": "Create a plan in the catalog.",
    "ChangePlanPrice": "Give a plan a new price version.",
    "RetirePlan": "Stop a plan taking new subscribers; existing ones continue.",
    "RegisterCustomer": "Register a customer; personal data is encrypted with their own key.",
    "UpdateCustomer": "Change a customer's details; null fields stay unchanged.",
    "EraseCustomer": "Erase a customer (GDPR): their key is destroyed, amounts stay.",
    "DefineCoupon": "Create a coupon.",
    "SetTaxRate": "Set (or change) a country's tax rate.",
    "Subscribe": "Start a subscription for a customer on a plan (invoices the first period "
    "unless there is a trial).",
    "ChangePlan": "Move a subscription to another plan or quantity now, prorated.",
    "Cancel": "Cancel a subscription now or at the end of its period.",
    "Pause": "Pause an active subscription: no billing until resumed.",
    "Resume": "Resume a paused subscription.",
    "Reactivate": "Withdraw a scheduled cancellation, or restart a canceled subscription.",
    "RecordPayment": "A payment collected outside the gateway flow (e.g. a bank transfer).",
    "AdvanceClock": "Run everything due up to `at` (renewals, retries, trial ends, "
    "reminders), in time order.",
    # events
    "Plan.Defined": "A plan was created (price version 1).",
    "Plan.PriceChanged": "A plan got a new price version.",
    "Plan.Retired": "A plan stopped taking new subscribers.",
    "Customer.Registered": "A customer was registered.",
    "Customer.Updated": "A customer's details changed.",
    "Customer.Erased": "A customer was erased: their key is destroyed.",
    "Coupon.Defined": "A coupon was created.",
    "TaxRate.Set": "A country's tax rate was set for the first time.",
    "TaxRate.Changed": "A country's tax rate changed.",
    "InvoiceSequence.Started": "The gapless invoice number sequence started.",
    "InvoiceSequence.NumbersAllocated": "Invoice numbers first..last were taken.",
    "CommandReceipt.Applied": "A command was applied (the idempotency receipt).",
    "LedgerClock.Started": "The ledger clock started at `at`.",
    "LedgerClock.Advanced": "The ledger clock advanced to `at`.",
    "Subscription.Subscribed": "A subscription started.",
    "Subscription.TrialConverted": "A trial ended and the first paid period began.",
    "Subscription.Renewed": "A subscription entered a new billing period.",
    "Subscription.Invoiced": "An invoice was issued.",
    "Subscription.PaymentSucceeded": "An invoice was paid.",
    "Subscription.PaymentFailed": "A collection attempt failed.",
    "Subscription.PlanChanged": "A subscription moved to another plan or price version.",
    "Subscription.QuantityChanged": "A subscription's quantity changed on the same plan.",
    "Subscription.CancellationScheduled": "A cancellation at the period's end was scheduled.",
    "Subscription.Churned": "A subscription ended.",
    "Subscription.Reactivated": "A scheduled cancellation was withdrawn or a canceled "
    "subscription restarted.",
    "Subscription.Paused": "A subscription was paused.",
    "Subscription.Resumed": "A paused subscription resumed.",
    "Subscription.RenewalReminderIssued": "A renewal reminder is due to the customer.",
    # ---- payments (issue 9): helper-owned section ----
    # ---- credit (issue 9): helper-owned section ----
    # ---- notifications (issue 9): helper-owned section ----
    # ---- webhooks (issue 9): helper-owned section ----
}


class MissingDoc(LookupError):
    """A field or record has no doc: write one in schemas/docs.py before shipping it."""


def field_doc(owner: str, name: str) -> str:
    """The doc for field `name` of `owner`; money fields say they are minor units."""
    text = OWNED.get((owner, name)) or FIELDS.get(name)
    if text is None:
        raise MissingDoc(f"no doc for field '{name}' of {owner}: add one to schemas/docs.py")
    return _money(text) if name in MONEY else text


def record_doc(owner: str) -> str:
    text = RECORDS.get(owner)
    if text is None:
        raise MissingDoc(f"no doc for {owner}: add one to RECORDS in schemas/docs.py")
    return text
