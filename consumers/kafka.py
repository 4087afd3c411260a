"""Kafka clients built from Config, in one place: every worker gets its own (not thread-safe).

kafka-python's producer defaults to idempotence with acks=all; we say so explicitly so a
later default change cannot weaken the relay's or the rejections' guarantees.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

for _message in ("read_text is deprecated", "open_text is deprecated"):
    warnings.filterwarnings("ignore", message=_message, category=DeprecationWarning)

from kafka import (  # noqa: E402
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError  # noqa: E402

log = logging.getLogger(__name__)
_Client = TypeVar("_Client")

# Short enough that a killed worker's partitions move on within seconds, long enough for CI.
SESSION_TIMEOUT_MS = 10_000
JOIN_STUCK_S = 3 * SESSION_TIMEOUT_MS / 1000  # a join still unfinished after this: start over
HEARTBEAT_MS = 2_000
# How long the broker may hold a fetch that finds nothing new. kafka-python sends one fetch
# at a time to a broker, and only for partitions whose records it has handed out: while one
# partition's fetch waited on an idle or drained one, the next records of the others waited
# too, up to the broker's default of 500 ms. A bare consumer reading 16,000 events measured
# 19,000 or 33,000 events/s by whether it hit that wait; at 100 ms, 29,000 to 35,000 in 29
# measurements of 30.
FETCH_WAIT_MS = 100
CLOSE_TIMEOUT_MS = 5_000  # leaving a group we may no longer be in must not hang a worker


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _bootstrap(config: Any) -> str:
    if not config.kafka_bootstrap:
        raise RuntimeError("SUBLEDGER_KAFKA_BOOTSTRAP is not set: there is no Kafka to talk to")
    return config.kafka_bootstrap


def security(config: Any) -> dict[str, Any]:
    """kafka-python's TLS/SASL keyword arguments for `config`; every client takes them, so no
    client can talk to a secured cluster in the clear. ValueError (one line) on a bad mix."""
    protocol = (getattr(config, "kafka_security_protocol", None) or "PLAINTEXT").upper()
    mechanism = (getattr(config, "kafka_sasl_mechanism", None) or "").upper() or None
    username = getattr(config, "kafka_sasl_username", None)
    password = getattr(config, "kafka_sasl_password", None)
    cafile = getattr(config, "kafka_ssl_cafile", None)
    if protocol not in SECURITY_PROTOCOLS:
        raise ValueError(
            f"SUBLEDGER_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)},"
            f" not '{protocol}'"
        )
    sasl = protocol.startswith("SASL_")
    if not sasl and (mechanism or username or password):
        raise ValueError(
            f"SUBLEDGER_KAFKA_SASL_* settings need SUBLEDGER_KAFKA_SECURITY_PROTOCOL"
            f" SASL_PLAINTEXT or SASL_SSL, not {protocol}"
        )
    if cafile and not protocol.endswith("SSL"):
        raise ValueError(
            f"SUBLEDGER_KAFKA_SSL_CAFILE needs SUBLEDGER_KAFKA_SECURITY_PROTOCOL SSL or"
            f" SASL_SSL, not {protocol}"
        )
    if cafile and not Path(cafile).is_file():
        raise ValueError(f"SUBLEDGER_KAFKA_SSL_CAFILE {cafile} is not a readable file")
    settings: dict[str, Any] = {"security_protocol": protocol}
    if cafile:
        settings["ssl_cafile"] = str(cafile)
    if sasl:
        mechanism = mechanism or "PLAIN"
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"SUBLEDGER_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)},"
                f" not '{mechanism}'"
            )
        if not username or not password:
            raise ValueError(
                f"SUBLEDGER_KAFKA_SECURITY_PROTOCOL {protocol} needs"
                " SUBLEDGER_KAFKA_SASL_USERNAME and SUBLEDGER_KAFKA_SASL_PASSWORD"
            )
        settings.update(
            sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password
        )
    return settings


class KafkaLoginFailed(RuntimeError):
    """Kafka answers but does not let this client in (a wrong password, mechanism or TLS)."""


def _open(make: Callable[..., _Client], settings: dict[str, Any]) -> _Client:
    """Build a client; a secured one that cannot log in fails with a clear error after
    `bootstrap_timeout_ms` (kafka-python retries a refused login until then)."""
    try:
        return make(**settings)
    except KafkaTimeoutError as exc:
        protocol = settings.get("security_protocol", "PLAINTEXT")
        where = settings["bootstrap_servers"]
        if protocol == "PLAINTEXT" or "bootstrap" not in str(exc).lower() or not _answers(where):
            raise
        raise KafkaLoginFailed(
            f"Kafka at {where} answers but refused the {protocol} login: check"
            " SUBLEDGER_KAFKA_SASL_USERNAME, SUBLEDGER_KAFKA_SASL_PASSWORD and"
            " SUBLEDGER_KAFKA_SASL_MECHANISM (or SUBLEDGER_KAFKA_SSL_CAFILE)"
        ) from None


def _answers(bootstrap: str) -> bool:
    """True if the first bootstrap server accepts a TCP connection (it is up, so the
    failure was the login)."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=3).close()
    except (OSError, ValueError):
        return False
    return True


def _base(config: Any, client_id: str) -> dict[str, Any]:
    """What every client shares: where Kafka is, who we are, how we prove it."""
    return {"bootstrap_servers": _bootstrap(config), "client_id": client_id, **security(config)}


def producer(config: Any, client_id: str = "subledger", **overrides: Any) -> KafkaProducer:
    settings: dict[str, Any] = {
        **_base(config, client_id),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
    }
    settings.update(overrides)
    return _open(KafkaProducer, settings)


def consumer(
    config: Any, group_id: str | None, client_id: str = "subledger", **overrides: Any
) -> KafkaConsumer:
    """A consumer that never auto-commits: positions live with the data they produced."""
    settings: dict[str, Any] = {
        **_base(config, client_id),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
        "fetch_max_wait_ms": FETCH_WAIT_MS,
    }
    if group_id is not None:
        settings.update(session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS)
    settings.update(overrides)
    return _open(KafkaConsumer, settings)


def wait_for_partitions(client: KafkaConsumer, topic: str, timeout_s: float = 30.0) -> None:
    """Load the topic's metadata before joining a group: a leader that has none assigns
    nothing ("No partition metadata") and the group sits idle until the next refresh."""
    deadline = time.monotonic() + timeout_s
    while not client.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")
        time.sleep(0.2)


def end_offsets(config: Any, topic: str, client_id: str) -> dict[TopicPartition, int]:
    """Where each partition of `topic` ends now (empty if the topic has none)."""
    client = consumer(config, None, client_id=client_id)
    try:
        parts = client.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return client.end_offsets(tps) if tps else {}
    finally:
        client.close()


def admin(config: Any, client_id: str = "subledger-admin", **overrides: Any) -> KafkaAdminClient:
    return _open(KafkaAdminClient, {**_base(config, client_id), **overrides})


def dead_letter_topic(config: Any) -> str:
    """Where events no consumer can decode go: `<events topic>.dead-letter`."""
    return f"{config.events_topic}.dead-letter"


class DeadLetters:
    """Undecodable events, copied to the dead-letter topic with why and where they were,
    so that they never stop a partition and are never lost from sight. The producer is
    opened on the first one."""

    def __init__(self, config: Any, worker: str) -> None:
        self.config = config
        self.worker = worker
        self._producer: KafkaProducer | None = None

    def send(self, message: Any, reason: str) -> None:
        from schemas import topics as t

        if self._producer is None:
            self._producer = producer(self.config, client_id=f"subledger-{self.worker}-dead")
        headers = [
            (t.H_REASON, " ".join(reason.split())[:1000].encode()),
            (t.H_SOURCE_TOPIC, message.topic.encode()),
            (t.H_SOURCE_PARTITION, str(message.partition).encode()),
            (t.H_SOURCE_OFFSET, str(message.offset).encode()),
            ("subledger.worker", self.worker.encode()),
        ]
        self._producer.send(
            dead_letter_topic(self.config), key=message.key, value=message.value, headers=headers
        )
        self._producer.flush()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()


def ensure_topics(config: Any) -> None:
    """Create the commands/events (3 partitions), rejected and dead-letter (1) topics when
    missing."""
    wanted = {
        config.commands_topic: 3,
        config.events_topic: 3,
        config.rejected_topic: 1,
        dead_letter_topic(config): 1,
    }
    client = admin(config)
    try:
        existing = set(client.list_topics())
        missing = {
            name: {"num_partitions": n, "replication_factor": 1}
            for name, n in wanted.items()
            if name not in existing
        }
        if missing:
            try:
                client.create_topics(missing, wait_for_metadata=True)
            except TopicAlreadyExistsError:  # another serve process won the race
                client.wait_for_topics(list(missing))
    finally:
        client.close()


class _NoteAssigned(ConsumerRebalanceListener):
    """Runs on kafka-python's I/O thread, the one that heartbeats: it only takes notes.

    Seeking means asking our own store (a database) where we stopped; done here it would
    hold up heartbeats and help strand the member (see GroupMember).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assigned: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing to hand over: positions live with the data they produced."""

    def on_partitions_assigned(self, assigned: Any) -> None:
        with self._lock:
            self._assigned.update(assigned)

    def take(self) -> set[TopicPartition]:
        """The partitions assigned since the last call."""
        with self._lock:
            taken, self._assigned = self._assigned, set()
        return taken


class GroupMember:
    """A subscribed consumer that seeks from the poll loop and rejoins when it is stranded.

    Every newly assigned partition is sought (`seek(tp)`: to the position our own store
    holds) before any record of it is handed over; records polled for it before that seek
    are dropped, the seek fetches them again. kafka-python 3.0.x can leave a member
    stranded: its heartbeats stop, the broker expels it after the session timeout, and it
    goes on believing it is in the group. When no heartbeat was answered for a session
    timeout and kafka-python does not mean to rejoin, the member closes its consumer and
    joins with a fresh one (one log line); the new assignment is sought like any other.
    """

    def __init__(
        self,
        make: Callable[[], KafkaConsumer],
        topic: str,
        seek: Callable[[TopicPartition], None],
        name: str,
    ) -> None:
        self._make = make
        self.topic = topic
        self._seek = seek
        self.name = name
        self.rejoins = 0
        self._joining_since: float | None = None
        self.consumer = self._join()

    def _join(self) -> KafkaConsumer:
        client = self._make()
        try:
            _check_internals(client)
            wait_for_partitions(client, self.topic)
            self._listener = _NoteAssigned()
            self._ready: set[TopicPartition] = set()
            client.subscribe([self.topic], listener=self._listener)
        except BaseException:
            client.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
            raise
        return client

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        """Records of sought partitions only; newly assigned partitions are sought here."""
        silent = self.stranded_for()
        if silent is not None:
            self.rejoin(silent)
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        fresh = self._listener.take()
        assigned = set(self.consumer.assignment() or ())
        ready = (self._ready - fresh) & assigned
        kept = {tp: records for tp, records in batches.items() if tp in ready}
        self._ready = ready
        for tp in sorted(fresh & assigned, key=lambda tp: tp.partition):
            self._seek(tp)
            ready = ready | {tp}
            self._ready = ready
        return kept

    @property
    def sought(self) -> frozenset[TopicPartition]:
        """The assigned partitions already sought to our stored positions (being consumed)."""
        return frozenset(self._ready)

    def stranded_for(self) -> float | None:
        """Seconds without an answered heartbeat, if the broker must have expelled us and
        kafka-python does not know it; None while the membership is sound or being mended.
        """
        coordinator = self.consumer._coordinator
        if coordinator.need_rejoin():  # kafka-python (re)joins on this very poll
            return None
        if not coordinator.stable():
            # joining (a fresh consumer, a rebalance under way): heartbeats restart once it
            # has joined, so their silence says nothing yet; a join that never ends does
            now = time.monotonic()
            self._joining_since = self._joining_since or now
            waited = now - self._joining_since
            return waited if waited > JOIN_STUCK_S else None
        self._joining_since = None
        beat = coordinator.heartbeat
        silent = time.monotonic() - max(beat.last_receive, beat.last_reset)
        return silent if silent > SESSION_TIMEOUT_MS / 1000 else None

    def rejoin(self, silent: float) -> None:
        """Leave what is left of the old membership and join again with a fresh consumer."""
        self._joining_since = None
        log.warning(
            "%s: no heartbeat answered (or no join finished) for %.0f s, so the broker"
            " dropped this member of group %s; rejoining with a fresh consumer",
            self.name,
            silent,
            self.consumer.config["group_id"],
        )
        try:
            self.consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
        except Exception as exc:  # the old membership is gone either way
            log.info("%s: closing the stranded consumer failed (harmless): %s", self.name, exc)
        self.consumer = self._join()
        self.rejoins += 1

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def _check_internals(client: KafkaConsumer) -> None:
    """Stranding is detected through kafka-python's coordinator: fail at start, not later,
    if an upgrade moved what we read (pyproject pins the tested range)."""
    coordinator = getattr(client, "_coordinator", None)
    beat = getattr(coordinator, "heartbeat", None)
    if not (
        callable(getattr(coordinator, "need_rejoin", None))
        and callable(getattr(coordinator, "stable", None))
        and hasattr(beat, "last_receive")
        and hasattr(beat, "last_reset")
    ):
        raise RuntimeError(
            "this kafka-python has no coordinator.heartbeat/need_rejoin/stable: install the version"
            " pyproject.toml pins"
        )
