"""The payments worker: charges and refunds the ledger asked for, made after commit.

It reads `Subscription.ChargeRequested` and `Subscription.RefundRequested`, calls the gateway
with the request's own idempotency key, and feeds the answer back as a command
(`RecordChargeOutcome`, `RecordRefundOutcome`) whose id is derived from that key, so a
repeated answer is a duplicate. Never two charges for one attempt: the key is the same
however often a request is read again (a crash, a redelivery, two workers), the gateway
answers a repeated key with its first answer, and a transaction that is redone after a
conflict never reached the worker at all. `GatewayUnavailable` (a timeout, a 5xx) is never
an outcome: the request is asked again later, with the same key.

Two runners, one way of settling a request:
- embedded, `InProcessPayments`: the Ledger's `after_commit` hook, right after each commit
  (and by due work between its items, so `clock advance` plays dunning in time order). Its
  position is a tracking record (`payments`) written with each outcome, in the ledger's
  own transaction, so an outcome and its position commit together;
- Kafka, `PaymentsWorker` (`serve --workers payments`): its own consumer group on the events
  topic, producing the outcomes to the commands topic; the Kafka offset is committed once
  they are flushed, so a kill -9 re-reads (and re-asks with the same keys), never skips.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.utils import get_topic

from domain import commands as c
from domain.books.command_receipt import CommandReceipt
from domain.customer import Customer
from domain.errors import CustomerErased
from domain.identity import customer_uuid, receipt_uuid
from domain.ledger.unit_of_work import UnitOfWork
from domain.pci import mask_card_numbers
from domain.ports import ChargeResult, GatewayUnavailable, PaymentGateway, Settled
from domain.subscription import Subscription
from domain.subscription.payments import is_pending
from schemas.codec import DecodeError
from schemas.records import EventRecord, to_record

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # the CLI says it in one `warning:` line of its own

CHARGE = "Subscription.ChargeRequested"
REFUND = "Subscription.RefundRequested"
REQUESTS = (CHARGE, REFUND)
TRACKING = "payments"  # the in-process worker's position in the notification log
ACTOR = "payments"


def charge_command_id(key: str) -> str:
    return f"charge:{key}"


def refund_command_id(key: str) -> str:
    return f"refund:{key}"


def command_id_for(record: EventRecord) -> str:
    key = str(record.data["idempotency_key"])
    return charge_command_id(key) if record.name == CHARGE else refund_command_id(key)


def _text(value: str | None, limit: int) -> str | None:
    """A gateway's words, one line, card numbers masked: commands refuse them."""
    if value is None:
        return None
    return mask_card_numbers(" ".join(str(value).split()))[:limit]


def _token(ledger: Any, customer_id: str) -> ChargeResult | str:
    """The customer's payment token, read through the vault, or why there is none."""
    customer = ledger.get(Customer, customer_uuid(customer_id))
    if customer is None or customer.erased:
        return ChargeResult(False, "", "customer_erased", "the customer was erased")
    try:
        token = ledger.personal(UnitOfWork(ledger.repository), customer).get("payment_token")
    except CustomerErased:
        return ChargeResult(False, "", "customer_erased", "the customer was erased")
    if not token:
        return ChargeResult(False, "", "no_payment_method", "the customer has no payment method")
    return str(token)


def outcome_command(ledger: Any, gateway: PaymentGateway, record: EventRecord) -> c.Command | None:
    """Ask the gateway what `record` requests; its answer as the command that records it.

    None, without asking, for a charge that is no longer pending (its outcome is in the
    book, or a payment by hand took its place). Raises GatewayUnavailable when the gateway
    gave no answer: nothing is recorded then.
    """
    # as the book is now: with the request at least (another process on the same data dir
    # may have recorded it, and what came after it, since this one cached the subscription)
    sub = ledger.get_at_least(Subscription, UUID(record.aggregate_id), record.version)
    if sub is None:
        raise LookupError(f"no subscription {record.aggregate_id} for {record.name}")
    d = record.data
    if record.name == CHARGE and not is_pending(sub, str(d["number"]), int(d["attempt"])):
        return None
    envelope: dict[str, Any] = {
        "command_id": command_id_for(record),
        "at": record.at,
        "actor": ACTOR,
        "source": ACTOR,
        "correlation_id": record.meta.get("correlation_id") or record.meta.get("command_id"),
        "subscription_id": sub.subscription_id,
        "customer_id": sub.customer_id,
    }
    if record.name == CHARGE:
        token = _token(ledger, sub.customer_id)
        result = (
            token
            if isinstance(token, ChargeResult)
            else gateway.charge(
                token=token,
                amount=int(d["amount"]),
                currency=str(d["currency"]),
                idempotency_key=str(d["idempotency_key"]),
            )
        )
        return c.RecordChargeOutcome(
            **envelope,
            invoice_number=str(d["number"]),
            attempt=int(d["attempt"]),
            succeeded=result.succeeded,
            reference=_text(result.reference, 200) or "",
            decline_code=None if result.succeeded else (_text(result.code, 200) or "declined"),
            decline_message=None if result.succeeded else _text(result.message, 1000),
        )
    refund = gateway.refund(
        charge_reference=str(d["charge_reference"]),
        amount=int(d["amount"]),
        currency=str(d["currency"]),
        idempotency_key=str(d["idempotency_key"]),
    )
    return c.RecordRefundOutcome(
        **envelope,
        credit_note=str(d["credit_note"]),
        succeeded=refund.succeeded,
        reference=_text(refund.reference, 200) or "",
        failure_code=None if refund.succeeded else (_text(refund.code, 200) or "failed"),
        failure_message=None if refund.succeeded else _text(refund.message, 1000),
    )


def already_recorded(ledger: Any, record: EventRecord) -> bool:
    """Whether this request's outcome is in the book already (no need to ask again)."""
    return ledger.get(CommandReceipt, receipt_uuid(command_id_for(record))) is not None


def request_topics() -> list[str]:
    """The stored topics of the request events that exist (refunds come with credit notes)."""
    names = [name.partition(".")[2] for name in REQUESTS]
    return [get_topic(getattr(Subscription, n)) for n in names if hasattr(Subscription, n)]


class InProcessPayments:
    """Embedded: settles every pending request after a commit, oldest first (the hook).

    A page of requests is asked of the gateway, then its outcomes are applied with a tracking
    record at the page's last position, in one transaction, so the position never runs ahead
    of an outcome; a request whose gateway is unavailable ends the page and the run there
    (it and those after it are settled by a later commit, asked again with the same keys).
    Two processes settling at once ask the gateway the same keys and record one outcome.
    """

    def __init__(self, ledger: Any, batch_size: int = 100) -> None:
        self.ledger = ledger
        self.batch_size = batch_size
        self.topics = request_topics()
        self._busy = threading.local()
        self.unavailable: str | None = None  # why the last run stopped early, if it did

    def __call__(self) -> Settled:
        if getattr(self._busy, "on", False):  # an outcome's own commit calls the hook again
            return Settled()
        self._busy.on = True
        try:
            return self._settle()
        finally:
            self._busy.on = False

    def _settle(self) -> Settled:
        ledger, subs, failed, churned = self.ledger, [], 0, 0
        self.unavailable = None
        while self.unavailable is None:
            start = ledger.recorder.max_tracking_id(TRACKING) or 0
            page = ledger.recorder.select_notifications(
                start=start, limit=self.batch_size, topics=self.topics, inclusive_of_start=False
            )
            asked: list[tuple[EventRecord, c.Command]] = []
            last = None  # the position up to which every request has its answer
            for n in page:
                record = to_record(ledger.mapper.to_domain_event(n), n.id)
                try:
                    command = outcome_command(ledger, ledger.gateway, record)
                except GatewayUnavailable as exc:
                    self.unavailable = str(exc) or "the payment gateway did not answer"
                    log.warning("payments: %s; %s stays pending", self.unavailable, record.name)
                    break
                last = n.id
                if command is not None:  # None: nothing to ask, only the position moves on
                    asked.append((record, command))
            if last is None:
                break
            try:  # the page's outcomes and its position, in one transaction
                results = ledger.execute_batch(
                    [command for _, command in asked], tracking=Tracking(TRACKING, last)
                )
            except IntegrityError:
                continue  # another process recorded this position first
            for (record, command), result in zip(asked, results, strict=True):
                subs.append(UUID(record.aggregate_id))
                outcome = result.outcome or {}
                if result.error is not None:
                    log.error("payments: outcome of %s refused: %s", record.name, result.error)
                elif outcome.get("recorded") and not getattr(command, "succeeded", True):
                    failed += 1 if record.name == CHARGE else 0
                    churned += 1 if outcome.get("churned") else 0
        return Settled(tuple(subs), failed, churned)


class PaymentsWorker:
    """Kafka: a member of `{prefix}-payments` on the events topic (`serve --workers payments`)."""

    def __init__(
        self,
        config: Any,
        ledger: Any,
        gateway: PaymentGateway,
        *,
        poll_ms: int = 500,
        max_records: int = 100,
        client_id: str = "subledger-payments",
        backoff_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        from consumers import kafka as k
        from schemas.codec import CommandCodec, EventCodec

        self.config = config
        self.ledger = ledger
        self.gateway = gateway
        self.poll_ms = poll_ms
        self.max_records = max_records
        self.backoff_s = backoff_s
        self._delay = backoff_s[0]
        self.events = EventCodec(check_types=False)
        self.commands = CommandCodec()
        self.producer = k.producer(config, client_id=f"{client_id}-outcomes")
        from consumers import metrics  # prometheus_client: for serve's workers only

        self._metrics = metrics
        self.dead_letters = k.DeadLetters(config, "payments")
        group = f"{config.group_prefix}-payments"
        self.member = k.GroupMember(
            lambda: k.consumer(config, group, client_id=client_id),
            config.events_topic,
            self.seek,
            name=client_id,
        )
        self.settled = 0

    @property
    def consumer(self) -> Any:
        return self.member.consumer

    def seek(self, tp: Any) -> None:
        """To the group's committed offset: everything before it has its outcome produced."""
        committed = self.consumer.committed(tp)
        if committed is None:
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, committed)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.poll_once(stop)
        finally:
            self.close()

    def poll_once(self, stop: threading.Event | None = None) -> int:
        batches = self.member.poll(self.poll_ms, self.max_records)
        return sum(self.handle(tp, messages, stop) for tp, messages in batches.items())

    def handle(self, tp: Any, messages: list[Any], stop: threading.Event | None = None) -> int:
        """Settle one partition's requests in order; commit the offset once flushed."""
        from kafka.structs import OffsetAndMetadata

        from schemas import topics as t
        from schemas.codec import command_key

        done, next_offset = 0, None
        for m in messages:
            name = dict(m.headers or []).get(t.H_EVENT, b"").decode()
            if name in REQUESTS:
                try:
                    record, command = self.events.decode(m.value), None
                except DecodeError as exc:  # not ours to judge; never block the partition
                    log.error("undecodable request at %s@%s to the dead-letter topic: %s",
                              tp, m.offset, exc)  # fmt: skip
                    self.dead_letters.send(m, str(exc))
                    done, next_offset = done + 1, m.offset + 1
                    continue
                if not already_recorded(self.ledger, record):
                    try:
                        command = outcome_command(self.ledger, self.gateway, record)
                    except GatewayUnavailable as exc:
                        self._metrics.PAYMENTS.labels(outcome="unavailable").inc()
                        self._back_off(tp, m.offset, exc, stop)
                        break
                if command is not None:
                    outcome = "succeeded" if getattr(command, "succeeded", False) else "failed"
                    self._metrics.PAYMENTS.labels(outcome=outcome).inc()
                    self.producer.send(
                        self.config.commands_topic,
                        key=command_key(command),
                        value=self.commands.encode(command),
                    )
                    self.settled += 1
                self._delay = self.backoff_s[0]
            done += 1
            next_offset = m.offset + 1
        if next_offset is None:
            return 0
        self.producer.flush()  # the outcomes are on Kafka before the offset moves past them
        try:
            self.consumer.commit({tp: OffsetAndMetadata(next_offset, "", -1)})
        except Exception as exc:  # the partition moved on: its new owner re-reads, same keys
            log.warning("payments: offset commit for %s failed: %s", tp, exc)
        return done

    def _back_off(self, tp: Any, offset: int, exc: Exception, stop: threading.Event | None) -> None:
        """The gateway did not answer: read this request again after a pause, same key."""
        log.warning("payments: gateway unavailable (%s); asking again in %.1f s", exc, self._delay)
        self.consumer.seek(tp, offset)
        (stop or threading.Event()).wait(self._delay)
        self._delay = min(self._delay * 2, self.backoff_s[1])

    def close(self) -> None:
        try:
            self.member.close()
            self.dead_letters.close()
        finally:
            self.producer.close()
