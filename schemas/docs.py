"""The words of the contract: a doc for every record and every field the generator emits.

Docs live here, not in the domain classes, because the domain's dataclasses carry no
per-field docs and upstream teams read the `.avsc` files, not our Python. The generator
refuses to emit a field without a doc, so a new domain field cannot ship undocumented.
Lookup order for a field: `(owner, field)` then `field`; owner is a command name
(`Subscribe`), an event name (`Subscription.Invoiced`) or a common type (`Pricing`).
"""

from __future__ import annotations

from schemas import notification_docs as _notify

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
    "preferences": (
        "Notification preferences, KEY=VALUE (notify.email, notify.webhook, notify.in_app,"
        " notify.reminders: on|off; on by default); UpdateCustomer sets the keys given and"
        " keeps the others."
    ),
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
    "events_before": "How many events the store held before this one (all chained by the seal).",
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
    "credit_note": "Number of a credit note (CN-000001...), gapless in its own series.",
    "balance_after": _money(
        "The customer's credit balance in this currency after the event (never negative)."
    ),
    "failure_code": "The gateway's code for why a refund failed (e.g. 'charge_disputed'); "
    "null on success.",
    "failure_message": "The gateway's words for why a refund failed; null on success.",
    "charge_reference": "The gateway's id of the charge being refunded (its PaymentSucceeded's "
    "reference).",
    "subscriptions": "External ids of the subscriptions concerned.",
    **_notify.FIELDS,  # schemas/notification_docs.py
    "endpoint_id": "Id of a webhook endpoint (the CLI makes one, we_<hex>, from the command "
    "id, so re-running the same line with the same command id is a duplicate).",
    "url": "Where the ledger POSTs the webhooks: an http:// or https:// URL with a host, at "
    "most 2048 characters, without a user name or password (the endpoint's signing secret is "
    "never in a command or event: it is kept encrypted in the ledger's configuration store).",
    "event_types": "The webhook types the endpoint receives (e.g. ['invoice.paid']); empty = "
    "every type.",
    "include_personal_data": "True to add the customer's name and email to the webhook bodies "
    "(resolved at send time; never for an erased customer); false = ids only.",
    "delivery_id": "Id of a webhook delivery: one event for one endpoint (whd_<32 hex>, "
    "derived from the event id and the endpoint id).",
    "event_id": "Id of the ledger event the delivery carries (its record's event_id on "
    "subledger.events); the webhook body's id is evt_ and these 32 hex digits.",
    "webhook_type": "The webhook type the event is sent as (e.g. 'invoice.paid').",
    "source_event": "The ledger event the delivery carries, as Aggregate.Event (e.g. "
    "'Subscription.Invoiced').",
    "source_id": "The aggregate id (UUID text) of the ledger event the delivery carries.",
    "source_version": "The version of that event in its aggregate's history (1 = first).",
    "occurred_at": "Effective time of the ledger event the delivery carries (UTC); the "
    "webhook body's `created`.",
    "attempted_at": "When the HTTP attempt was made (UTC, the sender's wall clock).",
    "status_code": "The receiver's HTTP status code; 0 = no answer (refused, timed out, ...). "
    "2xx is success, anything else a failure.",
    "error": "Why the attempt failed, in a few words (e.g. 'HTTP 503', 'no answer: timed "
    "out'); empty on success.",
    "next_attempt_at": "When the delivery is tried again (UTC, wall clock); null = no more "
    "attempts (sent, or given up after the retry window).",
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
    ("RecordChargeOutcome", "attempt"): "The charge attempt this answers (its "
    "ChargeRequested's attempt); an attempt no longer pending records nothing.",
    ("RecordChargeOutcome", "succeeded"): "True if the gateway took the money.",
    ("RecordChargeOutcome", "reference"): "The gateway's id of the charge (with Stripe, the "
    "PaymentIntent id); '' if no charge was made.",
    ("RecordChargeOutcome", "decline_code"): "Why the gateway declined, as Stripe codes it "
    "(card_declined, insufficient_funds, expired_card, processing_error, ...); null on success.",
    ("RecordChargeOutcome", "decline_message"): "The gateway's words for the decline (e.g. "
    "'Your card has insufficient funds.'); null on success.",
    ("Subscription.ChargeRequested", "amount"): "Amount to charge: the invoice's amount due.",
    ("Subscription.ChargeRequested", "attempt"): "Number of this charge attempt of the invoice "
    "(1 = first; each retry asks again).",
    ("Subscription.ChargeRequested", "idempotency_key"): "Key the payments worker passes to "
    "the gateway: the invoice number and the attempt ('INV-000001:1'), nothing a retry can "
    "change, so asking again never charges twice.",
    ("Subscription.PaymentFailed", "message"): "The gateway's words for the decline (e.g. 'Your "
    "card was declined.'); null in events recorded before version 2.",
    ("GrantCredit", "amount"): "Credit to give, 1 to 10,000,000,000; the customer's balance in "
    "the currency stays at most 10^17.",
    ("GrantCredit", "reason"): "Why the credit is given (e.g. 'goodwill', 'outage March 3').",
    ("RefundInvoice", "amount"): "Amount to refund; null = all that was paid on the invoice "
    "and not credited by an earlier credit note. Never more than that.",
    ("RefundInvoice", "reason"): "Why the money goes back (e.g. 'requested_by_customer', "
    "'duplicate').",
    ("RecordRefundOutcome", "succeeded"): "True if the gateway refunded the money.",
    ("RecordRefundOutcome", "reference"): "The gateway's id of the refund ('' if none was made).",
    ("Customer.CreditGranted", "amount"): "Credit added to the balance.",
    ("Customer.CreditGranted", "reason"): "Why, in words (e.g. 'net credit of invoice "
    "INV-000002', 'goodwill').",
    ("Customer.CreditGranted", "source"): "Where the credit comes from: 'grant' (given by "
    "hand), 'proration' (a downgrade's net credit), 'credit_note' (a refund of an invoice paid "
    "outside the gateway), 'refund_failed' (a refund the gateway refused) or 'migration' "
    "(credit an earlier version kept on a subscription).",
    ("Customer.CreditGranted", "reference"): "What it came from: an invoice number "
    "(proration), a credit note number (credit_note, refund_failed), a subscription id "
    "(migration); '' for a grant.",
    ("Customer.CreditApplied", "amount"): "Credit spent on the invoice.",
    ("Customer.CreditApplied", "invoice"): "Number of the invoice the credit paid (part of).",
    ("Subscription.Invoiced", "customer_credit"): "True: credit_applied came from, and "
    "credit_balance_after is, the customer's credit balance in this currency (every invoice "
    "since credit belongs to customers). False or null (invoices of earlier versions): both "
    "are the subscription's own credit.",
    ("Subscription.Invoiced", "credit_applied"): "Credit spent on this invoice (the customer's "
    "balance; see customer_credit).",
    ("Subscription.Invoiced", "credit_balance_after"): "Credit left after this invoice: the "
    "customer's balance in this currency (see customer_credit).",
    ("Subscription.CreditNoteIssued", "number"): "The credit note's number (CN-000001...).",
    ("Subscription.CreditNoteIssued", "invoice"): "Number of the paid invoice it credits.",
    ("Subscription.CreditNoteIssued", "lines"): "The credit note's lines: kind 'credit' (the "
    "amount less tax) and 'tax' (the tax share, in the invoice's proportion); positive.",
    ("Subscription.CreditNoteIssued", "amount"): "Total credited: never more than was paid on "
    "the invoice less earlier credit notes.",
    ("Subscription.CreditNoteIssued", "reason"): "Why the money goes back.",
    ("Subscription.CreditNoteIssued", "method"): "'refund': back through the gateway (a "
    "RefundRequested follows); 'credit': to the customer's credit balance (the invoice was "
    "paid outside the gateway).",
    ("Subscription.RefundRequested", "amount"): "Amount to refund.",
    ("Subscription.RefundRequested", "idempotency_key"): "Key the payments worker passes to "
    "the gateway's refund: the credit note's number and ':refund', so any retry asks for the "
    "same refund.",
    ("Subscription.RefundSucceeded", "amount"): "Amount refunded.",
    ("Subscription.RefundSucceeded", "reference"): "The gateway's id of the refund.",
    ("Subscription.RefundFailed", "amount"): "Amount that was not refunded: it is now the "
    "customer's credit (a Customer.CreditGranted, source refund_failed).",
    ("Subscription.CreditMovedToCustomer", "amount"): "Credit the subscription held, now its "
    "customer's (a Customer.CreditGranted, source migration, in the same transaction).",
    ("CreditNoteSequence.StrandedCreditMoved", "amount"): "Sum of the credit moved, over all "
    "currencies (each move says its own).",
    **_notify.OWNED,  # schemas/notification_docs.py
    ("ScheduleWebhookDelivery", "customer_id"): "The customer whose event it is, if any (the "
    "Kafka key, so one customer's deliveries stay in order).",
    ("WebhookDelivery.Scheduled", "customer_id"): "The customer whose event it is; null for "
    "events of no customer.",
    ("RecordWebhookAttempt", "attempt"): "Number of this attempt of the delivery (1 = first; "
    "replays go on counting): must be the next one.",
    ("WebhookDelivery.Attempted", "attempt"): "Number of this attempt of the delivery (1 = "
    "first; replays go on counting).",
    ("WebhookDelivery.Attempted", "status"): "The delivery's status after the attempt: "
    "'sent' (2xx), 'failed' (another attempt at next_attempt_at) or 'gave_up'.",
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
    "AuditChain.Sealed": "A store written before the tamper-evidence chain was chained"
    " (`audit seal`); `events_before` events preceded this one.",
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
    "RecordChargeOutcome": "The gateway's answer to a charge, fed back by the payments worker "
    "(its command id is 'charge:' and the charge's idempotency key: a repeat is a duplicate).",
    "Subscription.ChargeRequested": "A charge of an open invoice is asked of the gateway (made "
    "after commit by the payments worker).",
    "GrantCredit": "Give a customer credit in a currency; their next invoices in it spend it.",
    "RefundInvoice": "Refund money paid on an invoice, in full or in part: a credit note, "
    "refunded through the gateway (or to the customer's credit if paid outside it).",
    "RecordRefundOutcome": "The gateway's answer to a refund, fed back by the payments worker.",
    "Customer.CreditGranted": "Credit was added to the customer's balance in a currency.",
    "Customer.CreditApplied": "Credit was spent on one of the customer's invoices.",
    "CreditNoteSequence.Started": "The gapless credit note number sequence started.",
    "CreditNoteSequence.NumbersAllocated": "Credit note numbers first..last were taken.",
    "CreditNoteSequence.StrandedCreditMoved": "The credit an earlier version kept on "
    "subscriptions was moved to their customers (once per book).",
    "Subscription.CreditNoteIssued": "A credit note was issued against a paid invoice.",
    "Subscription.RefundRequested": "A refund is asked of the gateway (made after commit).",
    "Subscription.RefundSucceeded": "The gateway refunded the money.",
    "Subscription.RefundFailed": "The gateway refused the refund: the amount became the "
    "customer's credit.",
    "Subscription.CreditMovedToCustomer": "Credit the subscription held (an earlier version "
    "kept it there) now belongs to its customer.",
    **_notify.RECORDS,  # schemas/notification_docs.py
    "AddWebhookEndpoint": "Add a webhook endpoint (its secret is stored apart, never sent).",
    "RemoveWebhookEndpoint": "Remove a webhook endpoint: it receives nothing more.",
    "ScheduleWebhookDelivery": "The webhook worker's decision that a ledger event goes to an "
    "endpoint (recorded once per event and endpoint).",
    "RecordWebhookAttempt": "The outcome of one HTTP attempt of a webhook delivery.",
    "ReplayWebhookDelivery": "Send a webhook delivery again, with the same body id.",
    "WebhookEndpoints.Started": "The ledger's list of webhook endpoints began.",
    "WebhookEndpoints.EndpointAdded": "A webhook endpoint was added.",
    "WebhookEndpoints.EndpointRemoved": "A webhook endpoint was removed.",
    "WebhookDelivery.Scheduled": "A ledger event is to be delivered to a webhook endpoint.",
    "WebhookDelivery.Attempted": "A webhook delivery was attempted (with its outcome).",
    "WebhookDelivery.Replayed": "A webhook delivery was asked to be sent again.",
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
