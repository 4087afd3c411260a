"""The contract's words for the notifications commands and events, merged into
`schemas.docs` (FIELDS, OWNED, RECORDS there; same lookup rules)."""

from __future__ import annotations

FIELDS: dict[str, str] = {
    "message_id": "Id of an outbox message: one template for one customer about one event, on "
    "one channel; a UUID derived from the event id, the channel and the template, so the same "
    "event never makes a second message.",
    "template": "The message's template (its kind): welcome, receipt, payment_failed, "
    "renewal_reminder, trial_ending, plan_changed, cancellation_scheduled, "
    "cancellation_confirmed, credit_note or refund.",
    "claimer": "Who claimed the message: the dispatcher process's own id.",
    "lease_seconds": "How long the claim holds (1-86,400 s): after that, if no outcome was "
    "recorded, another dispatcher may claim the message again (same Message-ID).",
    "lease_until": "Until when the claim holds (UTC, the dispatcher's wall clock).",
    "result": "What the attempt came to: 'sent', 'failed' or 'gave_up'.",
    "detail": "The server's reference (sent) or why it failed, in a few words (card numbers "
    "masked); may be empty.",
    "permanent": "True if the failure will not change with a retry (the server refused the "
    "recipient): the message is given up at once.",
    "text": "The note's text: one line of at most 1,000 characters (recorded encrypted with "
    "the customer's key).",
    "note": "The note's text as hex ciphertext under the customer's own key; unreadable once "
    "the customer is erased.",
}

OWNED: dict[tuple[str, str], str] = {
    ("ClaimDelivery", "channel"): "The message's channel: 'email', 'in_app' or 'webhook'.",
    ("ClaimDelivery", "attempted_at"): "When the dispatcher claims it (UTC, its wall clock); "
    "the lease and the retry times are counted from it.",
    ("RecordDelivery", "attempt"): "The claimed attempt this is the outcome of (1 = first).",
    ("RecordDelivery", "attempted_at"): "When the attempt ended (UTC, the dispatcher's wall "
    "clock); a retry is due from it plus the backoff.",
    ("RecordCustomerNote", "channel"): "How the customer got in touch: 'email', 'phone', "
    "'chat' or 'other'.",
    ("Customer.NoteRecorded", "channel"): "How the customer got in touch: 'email', 'phone', "
    "'chat' or 'other'.",
    ("Subscription.TrialEndingSoon", "trial_end"): "When the trial ends (UTC): the first paid "
    "period starts then.",
    ("Subscription.TrialEndingSoon", "expected_amount"): "What the first paid period will "
    "cost, before tax and coupons.",
    ("Delivery.Opened", "channel"): "The message's channel: 'email', 'in_app' or 'webhook'.",
    ("Delivery.Claimed", "attempt"): "Number of this attempt (1 = first).",
    ("Delivery.Claimed", "attempted_at"): "When it was claimed (UTC, the dispatcher's wall clock).",
    ("Delivery.Sent", "attempt"): "The attempt that delivered it.",
    ("Delivery.Sent", "reference"): "The receiving server's reference (its answer to the "
    "message), or 'inbox' for an in-app message.",
    ("Delivery.Sent", "attempted_at"): "When it was delivered (UTC, the dispatcher's wall clock).",
    ("Delivery.Failed", "attempt"): "The attempt that failed.",
    ("Delivery.Failed", "error"): "Why it failed, in a few words (card numbers masked).",
    ("Delivery.Failed", "attempted_at"): "When the attempt failed (UTC, the dispatcher's wall "
    "clock).",
    ("Delivery.Failed", "next_attempt_at"): "When it may be tried again (UTC, wall clock): "
    "exponential backoff from the failure.",
    ("Delivery.GaveUp", "attempt"): "The last attempt made (0 = none was).",
    ("Delivery.GaveUp", "reason"): "Why it will not be sent (the last error, a permanent "
    "refusal, or the customer's erasure).",
    ("Delivery.Skipped", "reason"): "Why it is not sent: the customer's preference.",
    ("Delivery.HandedOff", "webhook_type"): "The webhook type the webhooks worker sends the "
    "same event as (e.g. 'invoice.paid').",
}

RECORDS: dict[str, str] = {
    "ClaimDelivery": "Claim an outbox message for delivery on its channel (one claimer wins "
    "until its lease runs out); the ledger decides whether it goes out at all.",
    "RecordDelivery": "Record what a claimed delivery attempt came to.",
    "MarkNotificationRead": "The customer opened an in-app message.",
    "RecordCustomerNote": "Record a support interaction with a customer (the text encrypted "
    "with their key).",
    "Customer.NoteRecorded": "A support interaction was recorded.",
    "Subscription.TrialEndingSoon": "A trial ends soon: the customer is told (3 days before).",
    "Delivery.Opened": "An outbox message's delivery on its channel began.",
    "Delivery.Claimed": "A dispatcher claimed the message for an attempt.",
    "Delivery.Sent": "The message was delivered (acknowledged by the server, or in the inbox).",
    "Delivery.Failed": "A delivery attempt failed; it is retried later.",
    "Delivery.GaveUp": "The message will not be delivered.",
    "Delivery.Skipped": "The message is not sent: the customer's preferences say so.",
    "Delivery.HandedOff": "The webhook channel's message is the webhooks worker's to send.",
    "Delivery.Read": "The customer read the in-app message.",
}
