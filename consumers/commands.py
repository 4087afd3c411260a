"""The command consumer: Kafka commands in, ledger events out, offsets kept with the events.

Each partition's last applied offset is an eventsourcing tracking record named
`<topic>:<partition>`, written in the same transaction as the events the batch caused, so a
crash re-reads at most an uncommitted batch and applies nothing twice. Rejections (bytes
that do not decode, commands that break a rule or that the access policy forbids their
source, code `forbidden`) go to the rejected topic with the original
key and value, card numbers masked (`CommandCodec.redact`), before the ledger transaction
commits: a crash can repeat a rejection, never lose one.
Offsets are also committed to Kafka afterwards, only so lag shows in the usual tools.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers import kafka as k
from consumers.faults import (
    FAILURES,
    STOP_AFTER,
    command_faults,
    lost_dependency,
    record_command_fault,
)
from domain.books.command_receipt import CommandReceipt
from domain.identity import receipt_uuid
from domain.pci import mask_card_numbers, mask_card_numbers_in_bytes
from domain.policy import Forbidden, Policy
from schemas import topics as t
from schemas.codec import CommandCodec, DecodeError, command_key

log = logging.getLogger(__name__)


def tracking_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


class CommandWorker:
    """A member of the `{prefix}-ledger` group: decode, apply, record offset, reject."""

    def __init__(
        self,
        config: Any,
        ledger: Any,
        *,
        poll_ms: int = 500,
        max_records: int = 500,
        client_id: str = "subledger-commands",
        policy: Policy | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.policy = policy  # None: every source may issue every command
        self.topic = config.commands_topic
        self.codec = CommandCodec()
        self.poll_ms = poll_ms
        self.max_records = max_records
        self.producer = k.producer(config, client_id=f"{client_id}-rejected")
        group = f"{config.group_prefix}-ledger"
        self.member = k.GroupMember(
            lambda: k.consumer(config, group, client_id=client_id),
            self.topic,
            self.seek,
            name=client_id,
        )
        self.applied = 0
        self.rejected = 0
        from consumers import metrics  # prometheus_client: for the workers, not every CLI call

        self.metrics = metrics

    @property
    def consumer(self) -> Any:
        """The current Kafka consumer (a fresh one after the member had to rejoin)."""
        return self.member.consumer

    def stored(self, partition: int) -> int | None:
        return self.ledger.recorder.max_tracking_id(tracking_name(self.topic, partition))

    def seek(self, tp: TopicPartition) -> None:
        stopped = command_faults(self.config.event_store, self.topic).get(tp.partition)
        if stopped is not None:  # until serve is started again
            self.consumer.pause(tp)
            log.warning("commands partition %s stays stopped at %s: %s", tp.partition,
                        stopped["position"], stopped["reason"])  # fmt: skip
            return
        last = self.stored(tp.partition)
        if last is None:
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, last + 1)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.close()

    def poll_once(self) -> int:
        batches = self.member.poll(self.poll_ms, self.max_records)
        log.debug("polled %s", {tp.partition: len(m) for tp, m in batches.items()})
        done = 0
        for tp, messages in batches.items():
            done += self.handle(tp, messages)
        return done

    def handle(self, tp: TopicPartition, messages: Sequence[Any]) -> int:
        """Apply one partition's batch in one ledger transaction; returns messages handled."""
        last = self.stored(tp.partition)
        if last is not None:
            messages = [m for m in messages if m.offset > last]  # another member got there
        if not messages:
            return 0
        good: list[tuple[Any, Any]] = []  # (message, command)
        bad: list[tuple[Any, DecodeError]] = []
        forbidden: list[tuple[Any, Any, Forbidden]] = []  # recorded nothing: the policy says no
        for message in messages:
            try:
                command = self.codec.decode(message.value)
            except DecodeError as exc:
                bad.append((message, exc))
                continue
            try:
                if self.policy is not None:  # `cli` too: the Avro default opens no door
                    self.policy.check(command.source, command.command_name)
            except Forbidden as exc:
                forbidden.append((message, command, exc))
                continue
            good.append((message, command))
        by_command = {id(cmd): msg for msg, cmd in good}

        def reject_before_commit(results: list[Any]) -> None:
            for message, exc in bad:
                self._reject(message, exc.reason, exc.code, exc.command_id, exc.command)
            for message, command, refusal in forbidden:
                self._reject(
                    message, str(refusal), refusal.code, command.command_id, command.command_name
                )
            for result in results:
                if result.error is not None:
                    error = result.error
                    self._reject(
                        by_command[id(result.command)],
                        str(error),
                        getattr(error, "code", type(error).__name__),
                        result.command.command_id,
                        result.command.command_name,
                    )
            self.producer.flush()

        end = messages[-1].offset
        tracking = Tracking(tracking_name(self.topic, tp.partition), end)
        started = time.monotonic()
        try:
            results = self.ledger.execute_batch(
                [cmd for _msg, cmd in good], tracking=tracking, before_commit=reject_before_commit
            )
        except IntegrityError:
            # another member recorded this partition's offset first (a rebalance race)
            log.warning("offset %s of %s already recorded; re-seeking", end, tp)
            self.seek(tp)
            return 0
        except Exception as exc:
            if lost_dependency(exc) is not None:
                raise  # a fault: the worker starts again and redoes this batch
            return self._failed(tp, messages[0].offset, exc)
        log.debug(
            "%s@%s..%s: %d applied, %d rejected",
            tp,
            messages[0].offset,
            end,
            sum(1 for r in results if r.error is None),
            len(bad) + len(forbidden) + sum(1 for r in results if r.error is not None),
        )
        self.rejected += len(bad) + len(forbidden) + sum(1 for r in results if r.error is not None)
        self.applied += sum(1 for r in results if r.error is None)
        self._count(results, bad, forbidden, time.monotonic() - started)
        try:
            self.consumer.commit({tp: OffsetAndMetadata(end + 1, "", -1)})
        except Exception as exc:  # only for lag visibility; the ledger holds the truth
            log.info("offset commit to Kafka failed (harmless): %s", exc)
        return len(messages)

    def _failed(self, tp: TopicPartition, first: int, exc: Exception) -> int:
        """The same batch failed (a bug, not a lost service): raise so the worker starts
        again and tries it again, until it has failed STOP_AFTER times; then stop this
        partition there, with the reason, and go on with the others."""
        key = (self.topic, tp.partition, first)
        FAILURES[key] += 1
        if FAILURES[key] < STOP_AFTER:
            raise exc
        reason = one_line(mask_card_numbers(f"{type(exc).__name__}: {exc}"))
        record_command_fault(self.config.event_store, self.topic, tp.partition, first, reason)
        self.consumer.pause(tp)
        log.error(
            "commands partition %s stopped at offset %s after %s failures: %s"
            " (fix it, then start serve again)",
            tp.partition,
            first,
            STOP_AFTER,
            reason,
        )
        return 0

    def _count(self, results: list[Any], bad: list[Any], forbidden: list[Any], took: float) -> None:
        m = self.metrics
        m.BATCH_SECONDS.labels(worker="commands").observe(took)
        applied = sum(1 for r in results if r.error is None)
        if applied:
            m.COMMANDS.labels(outcome="applied", code="").inc(applied)
        codes = [exc.code for _msg, exc in bad] + [refusal.code for *_x, refusal in forbidden]
        codes += [
            getattr(r.error, "code", type(r.error).__name__) for r in results if r.error is not None
        ]
        for code in codes:
            m.COMMANDS.labels(outcome="rejected", code=str(code)).inc()

    def _reject(
        self,
        message: Any,
        reason: str,
        code: str,
        command_id: str | None,
        command_name: str | None = None,
    ) -> None:
        """Forward the message to the rejected topic with why, every card number masked."""
        texts = [
            (t.H_REASON, one_line(reason)),
            (t.H_ERROR_CODE, str(code)),
            (t.H_SOURCE_TOPIC, message.topic),
            (t.H_SOURCE_PARTITION, str(message.partition)),
            (t.H_SOURCE_OFFSET, str(message.offset)),
            (t.H_REJECTED_AT, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ]
        if command_name:
            texts.append((t.H_COMMAND, command_name))
        masked_texts = [(name, mask_card_numbers(text)) for name, text in texts]
        redacted = masked_texts != texts
        headers = [(name, text[:1000].encode()) for name, text in masked_texts]
        if command_id:  # exempt from the card-number rule: consumers match on it
            headers.append((t.H_COMMAND_ID, command_id.encode()))
        value = message.value if message.value is not None or message.key else b""
        if value is not None:
            value, masked = self.codec.redact(value)
            redacted = redacted or masked
        key = message.key
        if key is not None:
            key, masked = mask_card_numbers_in_bytes(key)
            redacted = redacted or masked
        if redacted:
            headers.append((t.H_REDACTED, b"card_number"))
        self.producer.send(self.config.rejected_topic, value=value, key=key, headers=headers)

    def close(self) -> None:
        try:
            self.member.close()
        finally:
            self.producer.close()


# ---- publishing, for the CLI and upstream tools ----------------------------------------


class Outcome:
    """What became of a published command: applied (with its outcome), rejected, or unknown."""

    def __init__(self, status: str, detail: dict[str, Any]) -> None:
        self.status = status
        self.detail = detail


class Publisher:
    """Produces commands to the commands topic and can wait for their outcome."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.codec = CommandCodec()
        self.producer = k.producer(config, client_id="subledger-cli")
        self._rejected_from: dict[TopicPartition, int] | None = None

    def publish(self, command: Any, *, remember_rejections: bool = False) -> None:
        if remember_rejections:  # before producing, so a fast rejection is not missed
            self._rejected_from = k.end_offsets(
                self.config, self.config.rejected_topic, "subledger-cli-probe"
            )
        self.producer.send(
            self.config.commands_topic, key=command_key(command), value=self.codec.encode(command)
        )
        self.producer.flush()

    def wait(self, ledger: Any, command_id: str, timeout_s: float) -> Outcome:
        """Until a receipt for `command_id` is in the event store or it is rejected."""
        reader = k.consumer(self.config, None, client_id="subledger-cli-wait")
        try:
            starts = self._rejected_from or {}
            if starts:
                reader.assign(list(starts))
                for tp, offset in starts.items():
                    reader.seek(tp, offset)
            deadline = time.monotonic() + timeout_s
            while True:
                receipt = ledger.get(CommandReceipt, receipt_uuid(command_id))
                if receipt is not None:
                    return Outcome("applied", dict(receipt.outcome))
                if starts:
                    for messages in reader.poll(timeout_ms=300).values():
                        for m in messages:
                            headers = {h: v.decode() for h, v in m.headers or []}
                            if headers.get(t.H_COMMAND_ID) == command_id:
                                return Outcome("rejected", headers)
                else:
                    time.sleep(0.3)
                if time.monotonic() > deadline:
                    return Outcome("timeout", {"command_id": command_id})
        finally:
            reader.close()

    def close(self) -> None:
        self.producer.close()
