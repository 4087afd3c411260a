"""serve's store gauges and /readyz read the last snapshot, a thread of its own taking the
next when it is stale: a probe answers at once while a store hangs, says why it is not
ready, and is ready again when the stores answer; an idle serve asks the stores nothing."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

from consumers import metrics

STATE = {
    "relay": {"lag": 3},
    "commands": [{"partition": 0, "lag": 2, "stopped": False}],
    "projections": [{"projection": "billing", "partition": 0, "lag": 1, "stopped": True}],
}


class Store:
    """A snapshot that answers, fails or hangs, as the test says."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.release = threading.Event()
        self.fail: str | None = None
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.hang.is_set():
            self.release.wait(30)
        if self.fail:
            raise ConnectionError(self.fail)
        return STATE


def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def readyz(port: int) -> tuple[int, str, float]:
    began = time.monotonic()
    try:
        with urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            status, body = answer.status, answer.read().decode()
    except HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    return status, body, time.monotonic() - began


def test_readyz_answers_at_once_while_the_stores_hang_and_says_for_how_long() -> None:
    store = Store()
    store.hang.set()  # the very first snapshot hangs
    collector = metrics.StoreCollector(store, max_age_s=1.0)
    server = metrics.start_server(
        "127.0.0.1", 0, metrics.app(lambda: [p] if (p := collector.problem()) else [])
    )
    port = server.server_address[1]
    collector.start()
    try:
        eventually(lambda: store.calls == 1)
        status, body, took = readyz(port)
        assert (status, body) == (503, "stores or Kafka have not answered yet\n")
        assert took < 2.0
        assert list(collector.collect()) == []  # no gauges from no snapshot

        store.hang.clear()
        store.release.set()  # the stores answer: ready, with their figures
        eventually(lambda: readyz(port)[0] == 200)
        gauges = {m.name: [(s.labels, s.value) for s in m.samples] for m in collector.collect()}
        assert gauges["subledger_relay_lag_events"] == [({}, 3)]
        assert gauges["subledger_partition_stopped"] == [
            ({"worker": "commands", "partition": "0"}, 0),
            ({"worker": "projection-billing", "partition": "0"}, 1),
        ]
        calls = store.calls
        time.sleep(2.5)  # nobody asks: the stores are asked nothing
        assert store.calls == calls

        store.release.clear()
        store.hang.set()  # the next snapshot hangs: ready on the last one for three periods
        status, body, took = readyz(port)  # stale: this asks for the next one, and answers
        assert (status, body) == (200, "ready\n") and took < 2.0
        eventually(lambda: store.calls == calls + 1)
        eventually(lambda: readyz(port)[0] == 503)
        status, body, took = readyz(port)
        assert body.startswith("stores or Kafka have not answered for ") and took < 2.0
        assert gauges == {
            m.name: [(s.labels, s.value) for s in m.samples] for m in collector.collect()
        }  # the scrape reads the last figures, without waiting
        assert store.calls == calls + 1  # one snapshot at a time

        store.fail = "connection refused"
        store.release.set()  # the stores are away and say so: not ready, with their words
        refused = "stores or Kafka did not answer: connection refused\n"
        eventually(lambda: readyz(port)[1] == refused)
        store.fail = None  # and back
        eventually(lambda: readyz(port)[0] == 200)
    finally:
        store.release.set()
        server.shutdown()
        server.server_close()
        collector.stop()
    assert collector._thread is not None and not collector._thread.is_alive()
