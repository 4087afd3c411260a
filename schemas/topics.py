"""Topic and header names of the Kafka contract, in one place for producers and consumers.

Defaults only: deployments may prefix or rename topics through configuration, but the
message formats and header names below do not change with the topic name.
"""

from __future__ import annotations

COMMANDS = "subledger.commands"
"""Commands in (key: `schemas.codec.command_key`, value: Avro single-object command)."""

REJECTED = "subledger.commands.rejected"
"""Commands that could not be decoded or broke a rule: key and value are the original
message's with every card number masked (last four digits kept; a value that decodes as
Avro is written back under the same writer schema, so it still decodes); the headers
below say why, and `H_REDACTED` that something was masked."""

EVENTS = "subledger.events"
"""Events out (key: `schemas.keys.event_key`: the customer id for customer and subscription
events, else the aggregate id; value: Avro single-object event)."""

# Headers on subledger.commands.rejected (values UTF-8 text).
H_REASON = "subledger.reason"  # human-readable reason
H_ERROR_CODE = "subledger.error_code"  # stable code: DecodeError.code or LedgerError.code
H_COMMAND_ID = "subledger.command_id"  # absent when the command could not be decoded
H_COMMAND = "subledger.command"  # the command's name, when decoded
H_SOURCE_TOPIC = "subledger.source_topic"
H_SOURCE_PARTITION = "subledger.source_partition"  # decimal
H_SOURCE_OFFSET = "subledger.source_offset"  # decimal
H_REJECTED_AT = "subledger.rejected_at"  # ISO 8601 UTC wall-clock time of the rejection
H_REDACTED = "subledger.redacted"  # "card_number" when card numbers were masked; else absent

# Headers on subledger.events.
H_EVENT = "subledger.event"  # e.g. "Subscription.Renewed": filter without decoding
H_NOTIFICATION_ID = "subledger.notification_id"  # the event's position in the ledger (decimal)

REJECTED_HEADERS = (
    H_REASON,
    H_ERROR_CODE,
    H_COMMAND_ID,
    H_COMMAND,
    H_SOURCE_TOPIC,
    H_SOURCE_PARTITION,
    H_SOURCE_OFFSET,
    H_REJECTED_AT,
    H_REDACTED,
)
