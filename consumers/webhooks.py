"""The webhook worker: decide who receives each ledger event, POST it, record what came of it.

Two steps, both after the events are committed (DESIGN rule 7):
- **schedule**: for each ledger event that is a webhook type, the endpoints receiving it then
  (`WebhookEndpoints.receivers`, read from the event store) get a `ScheduleWebhookDelivery`
  each, recorded with the worker's position (an eventsourcing tracking record: `webhooks:log`
  embedded, `webhooks:<topic>:<partition>` from Kafka) in one transaction;
- **send**: each due delivery (candidates from the webhooks read model, the decision from
  the delivery itself, read fresh from the event store) is POSTed, signed, and the outcome
  recorded as `RecordWebhookAttempt`. One sender at a time (a file lock embedded, an advisory
  lock on PostgreSQL), so two processes never send one attempt twice; a crash between the
  POST and its record sends that attempt again, with the same body id.
Worker commands take effect at the ledger clock, so they never run due work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.utils import get_topic

from adapters import http
from adapters.http import SendLock
from adapters.secrets import SecretsUnreadable
from domain import commands as c
from domain.customer import Customer
from domain.errors import LedgerError
from domain.identity import customer_uuid
from domain.subscription import Subscription
from domain.topics import REGISTERED
from domain.webhooks.delivery import WebhookDelivery, body_id, delivery_id_for, delivery_uuid
from domain.webhooks.endpoints import ENDPOINTS_ID, Endpoint, WebhookEndpoints
from domain.webhooks.retry import RetryPolicy
from domain.webhooks.types import TYPES, webhook_data
from projections import webhooks as model
from projections.db import ReadDB
from schemas.records import EventRecord, to_record

log = logging.getLogger(__name__)
LOG_TRACKING = "webhooks:log"
PAGE = 1000


@cache
def mapped_topics() -> tuple[str, ...]:
    """The stored topics of every event that is a webhook type (old topics of moved classes
    too), so the log is filtered by the database, not decoded whole."""
    from schemas.model import event_classes

    classes = {cls for name, cls in event_classes().items() if name in TYPES}
    old = {topic for topic, cls in REGISTERED.items() if cls in classes}
    return tuple(sorted({get_topic(cls) for cls in classes} | old))


class Dispatcher:
    """Schedules and sends webhook deliveries for one ledger and its read-model database."""

    def __init__(
        self,
        ledger: Any,
        db: ReadDB,
        secrets: Any,
        lock: SendLock,
        *,
        now: Callable[[], datetime],
        post: Callable[..., http.Answer] = http.post,
        timeout_s: float = 10.0,
        policy: RetryPolicy | None = None,
        catch_up: Callable[[], Any] | None = None,
    ) -> None:
        self.ledger = ledger
        self.db = db
        self.secrets = secrets
        self.lock = lock
        self.now = now
        self.post = post
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self.catch_up = catch_up or (lambda: None)

    def fresh(self, cls: type, aggregate_id: UUID) -> Any:
        """The aggregate as stored now, never a cached copy another process has moved on."""
        from eventsourcing.application import AggregateNotFoundError

        try:
            agg = self.ledger.repository.get(aggregate_id, version=2**62)
        except AggregateNotFoundError:
            return None
        return agg if isinstance(agg, cls) else None

    def registry(self) -> WebhookEndpoints | None:
        return self.fresh(WebhookEndpoints, ENDPOINTS_ID)

    # ---- schedule ---------------------------------------------------------------------

    def decide(
        self, records: Sequence[EventRecord], registry: WebhookEndpoints | None
    ) -> list[c.ScheduleWebhookDelivery]:
        """One ScheduleWebhookDelivery per (event, endpoint receiving it)."""
        at = self.ledger.clock_now()
        if registry is None or at is None:
            return []
        out = []
        for r in records:
            webhook_type = TYPES.get(r.name)
            if webhook_type is None:
                continue
            for endpoint in registry.receivers(webhook_type, r.at):
                if endpoint.active:
                    out.append(self._schedule(r, endpoint, at))
        return out

    def _schedule(self, r: EventRecord, e: Endpoint, at: datetime) -> c.ScheduleWebhookDelivery:
        customer = r.data.get("customer_id")
        return c.ScheduleWebhookDelivery(
            command_id=f"webhook-schedule:{delivery_id_for(r.event_id, e.endpoint_id)}",
            at=at,
            actor="webhooks",
            source="webhooks",
            endpoint_id=e.endpoint_id,
            event_id=r.event_id,
            source_event=r.name,
            source_id=r.aggregate_id,
            source_version=r.version,
            occurred_at=r.at,
            customer_id=customer if isinstance(customer, str) else None,
        )

    def record(self, commands: Sequence[c.Command], tracking: Tracking | None) -> list[str]:
        """Record the decisions with the position; ids of the deliveries newly scheduled.

        Raises IntegrityError when another worker recorded this position first."""
        results = self.ledger.execute_batch(list(commands), tracking=tracking)
        for result in results:
            if result.error is not None:  # e.g. the endpoint was removed meanwhile
                log.info("webhook delivery not scheduled: %s", result.error)
        return [
            r.outcome["delivery_id"] for r in results if r.outcome and r.outcome.get("scheduled")
        ]

    def schedule_from_log(self, deadline: float | None = None) -> int:
        """Embedded: schedule deliveries for the notification log past our position."""
        recorder = self.ledger.recorder
        registry = self.registry()
        if registry is None or not registry.active():
            return 0  # nothing to send; events before an endpoint is added are not its
        scheduled = 0
        head = recorder.max_notification_id() or 0
        position = recorder.max_tracking_id(LOG_TRACKING) or 0
        while position < head and (deadline is None or time.monotonic() < deadline):
            page = recorder.select_notifications(
                start=position,
                limit=PAGE,
                stop=head,
                topics=mapped_topics(),
                inclusive_of_start=False,
            )
            end = page[-1].id if len(page) == PAGE else head
            records = [to_record(self.ledger.mapper.to_domain_event(n), n.id) for n in page]
            try:
                scheduled += len(
                    self.record(self.decide(records, registry), Tracking(LOG_TRACKING, end))
                )
            except IntegrityError:  # another process took this page: it is done
                return scheduled
            position = end
        return scheduled

    # ---- send -------------------------------------------------------------------------

    def send_due(
        self, deadline: float | None = None, first: Sequence[str] = (), limit: int = 200
    ) -> dict[str, int]:
        """Attempt every due delivery (those in `first` first) until `deadline`."""
        counts = {"sent": 0, "failed": 0, "gave_up": 0}
        with self.lock.held() as mine:
            if not mine:
                return counts  # another process is sending: it sends these too
            self.forget_removed()
            tried: set[str] = set()
            while deadline is None or time.monotonic() < deadline:
                self.catch_up()
                ids = list(dict.fromkeys([*first, *model.due(self.db, self.now(), limit)]))
                ids = [i for i in ids if i not in tried]
                if not ids:
                    break
                for delivery_id in ids:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    tried.add(delivery_id)
                    status = self.attempt(delivery_id)
                    if status in counts:
                        counts[status] += 1
                first = ()
        self.catch_up()
        return counts

    def forget_removed(self) -> None:
        """Delete the secrets of removed endpoints (`webhook remove --publish` could not)."""
        registry = self.registry()
        for endpoint in registry.endpoints.values() if registry else ():
            if not endpoint.active and self.secrets.get(endpoint.endpoint_id) is not None:
                self.secrets.delete(endpoint.endpoint_id)

    def attempt(self, delivery_id: str) -> str | None:
        """One attempt of one delivery if it is due; the status it leaves, or None."""
        delivery = self.fresh(WebhookDelivery, delivery_uuid(delivery_id))
        started = self.now()
        if delivery is None or not delivery.due(started):
            return None
        registry = self.registry()
        endpoint = registry.endpoints.get(delivery.endpoint_id) if registry else None
        if endpoint is None or not endpoint.active:
            return None
        try:
            secret = self.secrets.get(endpoint.endpoint_id)
        except SecretsUnreadable:
            secret, why = None, "its secret cannot be decrypted (SUBLEDGER_WEBHOOK_SECRETS_KEY?)"
        else:
            why = "no signing secret is stored for the endpoint"
        if secret is None:
            answer = http.Answer(0, f"not sent: {why}")
        else:
            body = self.body(delivery, endpoint)
            headers = {
                http.SIGNATURE_HEADER: http.signature(secret, body, int(time.time())),
                http.DELIVERY_HEADER: delivery_id,
            }
            answer = self.post(endpoint.url, body, headers, self.timeout_s)
        failures = delivery.round_attempts + 1
        round_start = delivery.round_started_at or started
        later = None if answer.ok else self.policy.next_attempt(round_start, started, failures)
        number = delivery.attempts + 1
        command = c.RecordWebhookAttempt(
            command_id=f"webhook-attempt:{delivery_id}:{number}",
            at=self.ledger.clock_now(),
            actor="webhooks",
            source="webhooks",
            delivery_id=delivery_id,
            attempt=number,
            attempted_at=started,
            status_code=answer.status,
            error=answer.error[:200],
            next_attempt_at=later,
        )
        try:
            return str(self.ledger.execute(command)["status"])
        except LedgerError as exc:  # another sender recorded this attempt first
            log.info("webhook attempt not recorded: %s", exc)
            return None

    def body(self, delivery: WebhookDelivery, endpoint: Endpoint) -> bytes:
        """The JSON body: id, type, created, data; the same on every attempt and replay
        (but for personal data, resolved now: none once the customer is erased)."""
        source = UUID(delivery.source_id)
        events = list(
            self.ledger.events.get(
                source, gt=delivery.source_version - 1, lte=delivery.source_version
            )
        )
        record = to_record(events[0]) if events else None
        data: dict[str, Any] = {}
        if record is not None:
            sub_id = None
            if record.aggregate_type == "Subscription":
                sub = self.ledger.get(Subscription, source)
                sub_id = sub.subscription_id if sub is not None else None
            data = webhook_data(delivery.source_event, record.data, subscription_id=sub_id)
        if endpoint.include_personal_data and delivery.customer_id:
            person = self.personal(delivery.customer_id)
            if person:
                data["customer"] = person
        doc = {
            "id": body_id(delivery.event_id),
            "type": delivery.webhook_type,
            "created": int(delivery.occurred_at.timestamp()),
            "data": data,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    def personal(self, customer_id: str) -> dict[str, Any] | None:
        """Name and email, decrypted now; None for an erased (or unknown) customer."""
        customer = self.fresh(Customer, customer_uuid(customer_id))
        if customer is None or customer.erased:
            return None
        data = self.ledger.vault.decrypt(str(customer.id), customer.personal)
        if not data:
            return None
        return {"name": data.get("name"), "email": data.get("email")}

    def run_once(self, deadline: float | None = None) -> dict[str, int]:
        """Embedded: schedule what the log holds, then send what is due, until `deadline`."""
        scheduled = self.schedule_from_log(deadline)
        return {"scheduled": scheduled, **self.send_due(deadline)}

    def close(self) -> None:
        self.secrets.close()
        self.lock.close()


class WebhookWorker:
    """`serve --workers webhooks`: its own group on the events topic, then the sender.

    Each partition's batch of decisions and its offset (tracking `webhooks:<topic>:<p>`)
    commit in one event-store transaction; only events whose `subledger.event` header is a
    webhook type are decoded. Retries are found in the webhooks read model, which the
    `projections` workers feed.
    """

    def __init__(self, config: Any, dispatcher: Dispatcher, *, poll_ms: int = 500) -> None:
        from consumers import kafka as k  # Kafka's client loads only for serve
        from schemas.codec import EventCodec

        self.dispatcher = dispatcher
        self.topic = config.events_topic
        self.codec = EventCodec(check_types=False)
        self.dead_letters = k.DeadLetters(config, "webhooks")
        self.poll_ms = poll_ms
        group = f"{config.group_prefix}-webhooks"
        self.member = k.GroupMember(
            lambda: k.consumer(config, group, client_id="subledger-webhooks"),
            self.topic,
            self.seek,
            name="subledger-webhooks",
        )

    def tracking_name(self, partition: int) -> str:
        return f"webhooks:{self.topic}:{partition}"

    def seek(self, tp: Any) -> None:
        last = self.dispatcher.ledger.recorder.max_tracking_id(self.tracking_name(tp.partition))
        if last is None:
            self.member.consumer.seek_to_beginning(tp)
        else:
            self.member.consumer.seek(tp, last + 1)

    def handle(self, tp: Any, messages: Sequence[Any]) -> list[str]:
        """Schedule one partition's batch; the ids of deliveries newly scheduled."""
        from schemas import topics as t
        from schemas.codec import DecodeError

        name = self.tracking_name(tp.partition)
        last = self.dispatcher.ledger.recorder.max_tracking_id(name)
        messages = [m for m in messages if last is None or m.offset > last]
        if not messages:
            return []
        records = []
        for m in messages:
            event = dict(m.headers or []).get(t.H_EVENT, b"").decode(errors="replace")
            if event not in TYPES:
                continue
            try:
                records.append(self.codec.decode(m.value))
            except DecodeError as exc:  # not ours to judge; never block the partition
                log.error(
                    "undecodable event at %s@%s to the dead-letter topic: %s", tp, m.offset, exc
                )
                self.dead_letters.send(m, str(exc))
        registry = self.dispatcher.registry() if records else None
        commands = self.dispatcher.decide(records, registry)
        try:
            return self.dispatcher.record(commands, Tracking(name, messages[-1].offset))
        except IntegrityError:  # another member recorded this offset first
            return []

    def poll_once(self, send_s: float = 5.0) -> int:
        scheduled: list[str] = []
        for tp, messages in self.member.poll(self.poll_ms, 500).items():
            scheduled += self.handle(tp, messages)
        self.dispatcher.send_due(time.monotonic() + send_s, first=scheduled)
        return len(scheduled)

    def run(self, stop: Any) -> None:
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.member.close()
            self.dead_letters.close()
            self.dispatcher.close()


def has_endpoints(ledger: Any) -> bool:
    """Whether any endpoint is active: without one there is nothing to schedule or send."""
    registry = ledger.get(WebhookEndpoints, ENDPOINTS_ID)
    return registry is not None and bool(registry.active())


def start_at_head(ledger: Any) -> None:
    """Embedded, before an endpoint is added while none is active: the log so far holds no
    event for it, so the worker's position moves to the head instead of scanning it all."""
    if has_endpoints(ledger):
        return
    head = ledger.recorder.max_notification_id() or 0
    if head > (ledger.recorder.max_tracking_id(LOG_TRACKING) or 0):
        with contextlib.suppress(IntegrityError):  # another process moved it further
            ledger.execute_batch([], tracking=Tracking(LOG_TRACKING, head))


def dispatcher_for(
    runtime: Any,
    config: Any,
    *,
    now: Callable[[], datetime] | None = None,
    post: Callable[..., http.Answer] = http.post,
) -> Dispatcher:
    """A dispatcher on a runtime's ledger and read models, with the configured secrets."""
    from adapters.clock import now as wall_clock
    from adapters.secrets import secret_store

    config.data_dir.mkdir(parents=True, exist_ok=True)
    first = max(int(config.webhook_retry_delay), 0)
    return Dispatcher(
        runtime.ledger,
        runtime.db,
        secret_store(config.event_store, config.data_dir, config.webhook_secrets_key),
        SendLock(config.event_store, str(config.data_dir / "webhooks.lock")),
        now=now or wall_clock,
        post=post,
        timeout_s=float(config.webhook_timeout),
        policy=RetryPolicy(first_delay_s=first, max_delay_s=max(first, 12 * 3600)),
        catch_up=runtime.catch_up,
    )
