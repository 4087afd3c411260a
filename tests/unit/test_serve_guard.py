"""serve's workers start again after losing a dependency: which errors are faults (and which
service), the pauses, the health states and the reconnect counts."""

from __future__ import annotations

import threading

import psycopg2
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from consumers import metrics, serve
from consumers.health import Health


def test_faults_name_the_service_they_lost() -> None:
    assert serve.lost_dependency(psycopg2.OperationalError("server closed")) == "PostgreSQL"
    assert serve.lost_dependency(StoreOperationalError("gone")) == "PostgreSQL"
    assert serve.lost_dependency(KafkaConnectionError("refused")) == "Kafka"
    assert serve.lost_dependency(KafkaTimeoutError("bootstrap")) == "Kafka"
    assert serve.lost_dependency(ConnectionResetError("reset")) == "network"
    try:  # a cause counts too: the wrapper says less than what it wraps
        try:
            raise psycopg2.InterfaceError("connection already closed")
        except psycopg2.InterfaceError as exc:
            raise RuntimeError("batch failed") from exc
    except RuntimeError as wrapped:
        assert serve.lost_dependency(wrapped) == "PostgreSQL"
    assert serve.lost_dependency(ValueError("a bug")) is None
    assert serve.lost_dependency(KeyError("x")) is None


def reconnects(label: str) -> float:
    return metrics.REGISTRY.get_sample_value("subledger_reconnects_total", {"dependency": label})


def test_a_worker_that_loses_postgresql_backs_off_and_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serve, "RETRY_FIRST_S", 0.01)
    pauses: list[float] = []
    stop = threading.Event()
    real_wait = stop.wait

    def wait(timeout: float | None = None) -> bool:
        pauses.append(timeout or 0)
        return real_wait(0)

    monkeypatch.setattr(stop, "wait", wait)
    written: list[tuple] = []
    health = Health(record=lambda *line: written.append(line))
    errors: list[BaseException] = []
    calls: list[dict] = []
    before = reconnects("postgresql"), reconnects("none")

    def body(stop: threading.Event) -> None:
        calls.append(dict(health.states))
        if len(calls) <= 3:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        if len(calls) == 4:
            raise ValueError("a bug, not a fault")
        stop.set()  # the fifth run goes on until serve stops

    serve._guard("relay", body, stop, errors, health)()
    assert len(calls) == 5 and errors == []
    assert calls[1]["relay"] == ("running", "")  # marked running as each run starts
    # capped exponential with jitter: each pause in [delay/2, delay], the delay doubling
    assert len(pauses) == 4
    for i, pause in enumerate(pauses):
        assert 0.01 * 2**i / 2 <= pause <= 0.01 * 2**i
    assert reconnects("postgresql") == before[0] + 3
    assert reconnects("none") == before[1] + 1
    # its line for `status`: written at each start, the last time as it stopped
    assert [(w[0], w[1], w[2]) for w in written] == [
        ("relay", "running", 0),
        ("relay", "running", 1),
        ("relay", "running", 2),
        ("relay", "running", 3),
        ("relay", "running", 4),
        ("relay", "stopped", 4),
    ]
    assert written[-1][3] == "failed" and written[3][3] == "lost PostgreSQL"
    assert health.not_ready() == ["relay: stopped"]


def test_while_it_waits_the_worker_is_not_ready_and_says_why() -> None:
    health = Health()
    health.running("commands")
    health.backing_off("relay", "lost PostgreSQL")
    assert health.not_ready() == ["relay: lost PostgreSQL"]
    health.running("relay")
    assert health.not_ready() == []


def test_serve_collects_young_objects_less_often_and_the_older_ones_as_before() -> None:
    import gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        serve.fewer_collections()
        assert gc.get_threshold() == (serve.GC_YOUNG, 10, 10)
        assert serve.GC_YOUNG >= 10_000  # far fewer than Python's 700
    finally:
        gc.set_threshold(*before)
