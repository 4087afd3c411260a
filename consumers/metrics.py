"""`serve --metrics-port`: Prometheus metrics (the official prometheus_client), /healthz
and /readyz, on a small HTTP server of serve's own.

Counters are counted where the work is done (workers call `count_*`); the lags and stopped
partitions are read from the stores and Kafka by a thread of their own, at most once every
few seconds (consumers/health.snapshot, the same figures as `subledger status`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

disable_created_metrics()  # no `_created` series beside each counter: noise to alerting
REGISTRY = CollectorRegistry()
COMMANDS = Counter(
    "subledger_commands",
    "Commands the command worker handled, by outcome (applied, rejected) and rejection code.",
    ["outcome", "code"],
    registry=REGISTRY,
)
EVENTS_RECORDED = Counter(
    "subledger_events_recorded", "Events this process recorded in the event store.",
    registry=REGISTRY,
)  # fmt: skip
BATCH_SECONDS = Histogram(
    "subledger_batch_seconds",
    "Seconds a worker spent on one batch (a partition's commands, a relay batch, ...).",
    ["worker"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PAYMENTS = Counter(
    "subledger_payments", "Charge and refund attempts at the gateway, by outcome.", ["outcome"],
    registry=REGISTRY,
)  # fmt: skip
NOTIFICATIONS = Counter(
    "subledger_notifications",
    "Notification delivery attempts, by channel and outcome (sent, failed, gave_up, skipped).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "subledger_reconnects",
    "Times a worker lost a dependency (PostgreSQL, Kafka) or failed, and started again.",
    ["dependency"],
    registry=REGISTRY,
)


DEPENDENCIES = {"PostgreSQL": "postgresql", "Kafka": "kafka", "network": "network", None: "none"}
for _label in DEPENDENCIES.values():  # 0 from the start, so a rate() alert has a series
    RECONNECTS.labels(dependency=_label)


def count_reconnect(dependency: str | None) -> None:
    RECONNECTS.labels(dependency=DEPENDENCIES.get(dependency, "none")).inc()


class StoreCollector(Collector):
    """Lags and stopped partitions, from a snapshot of the stores and Kafka.

    A scrape or /readyz reads the last snapshot and never waits on a store (one that is away
    can take its driver's whole connect timeout to say so): when it is older than
    `max_age_s`, a thread of its own takes the next one, one at a time. An idle `serve` asks
    the stores nothing.
    """

    def __init__(self, snapshot: Callable[[], dict[str, Any]], max_age_s: float = 5.0) -> None:
        self.snapshot = snapshot
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None
        self.error: str | None = None
        self._answered: float | None = None  # monotonic time the last snapshot came back
        self._asking: float | None = None  # since when the one under way was asked
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> StoreCollector:
        """The first snapshot, so the first probe has an answer to read."""
        self._ask()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _ask(self) -> None:
        with self._lock:
            answered = self._answered
            fresh = answered is not None and time.monotonic() - answered <= self.max_age_s
            if fresh or self._asking is not None or self._stopped:
                return
            self._asking = time.monotonic()
            self._thread = threading.Thread(
                target=self._take, name="subledger-snapshot", daemon=True
            )
            self._thread.start()

    def _take(self) -> None:
        try:
            state, error = self.snapshot(), None
        except Exception as exc:  # a scrape must not fail because a store is down
            state, error = None, " ".join(str(exc).split())[:200]
        with self._lock:
            self._state, self.error = state, error
            self._answered, self._asking = time.monotonic(), None

    def state(self) -> dict[str, Any] | None:
        """The last snapshot (None if it failed or none came back yet); a new one asked
        for if it is stale."""
        self._ask()
        return self._state

    def problem(self) -> str | None:
        """Why the stores and Kafka cannot be counted on, or None: none answered yet, the
        last snapshot failed, or the one under way has hung for over three periods."""
        self._ask()
        with self._lock:
            answered, asking, state, error = self._answered, self._asking, self._state, self.error
        if asking is not None and time.monotonic() - asking > 3 * self.max_age_s:
            return f"stores or Kafka have not answered for {time.monotonic() - asking:.0f} s"
        if answered is None:
            return "stores or Kafka have not answered yet"
        if state is None:
            return f"stores or Kafka did not answer: {error}"
        return None

    def collect(self) -> Iterable[Metric]:
        state = self.state()
        if state is None:
            return
        relay = GaugeMetricFamily(
            "subledger_relay_lag_events", "Events in the store the relay has not published."
        )
        relay.add_metric([], (state["relay"] or {}).get("lag", 0))
        yield relay
        commands = GaugeMetricFamily(
            "subledger_commands_lag_messages",
            "Commands on the topic the ledger has not applied yet, per partition.",
            labels=["partition"],
        )
        for row in state["commands"] or []:
            commands.add_metric([str(row["partition"])], row["lag"])
        yield commands
        lag = GaugeMetricFamily(
            "subledger_projection_lag_messages",
            "Events a projection has not applied yet, per partition of the events topic.",
            labels=["projection", "partition"],
        )
        stopped = GaugeMetricFamily(
            "subledger_partition_stopped",
            "1 when a worker stopped a partition on input it cannot handle (see the reason"
            " in `subledger status`).",
            labels=["worker", "partition"],
        )
        for row in state["commands"] or []:
            stopped.add_metric(["commands", str(row["partition"])], 1 if row["stopped"] else 0)
        for row in state["projections"]:
            partition = "" if row["partition"] is None else str(row["partition"])
            lag.add_metric([row["projection"], partition], row["lag"])
            stopped.add_metric(
                [f"projection-{row['projection']}", partition], 1 if row["stopped"] else 0
            )
        yield lag
        yield stopped


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        log.debug("metrics: " + format, *args)


def app(not_ready: Callable[[], list[str]]) -> Callable[..., Any]:
    """/metrics (Prometheus text), /healthz (the process answers), /readyz (every worker
    runs, none is reconnecting, and the stores and Kafka answered the last snapshot)."""
    metrics = make_wsgi_app(REGISTRY)

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            reasons = not_ready()
            if reasons:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return ["\n".join(reasons).encode() + b"\n"]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ready\n"]
        if path in ("/metrics", "/"):
            return metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: /metrics, /healthz, /readyz\n"]

    return route


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A request each in a thread of its own: /healthz never waits behind a slow scrape."""

    daemon_threads = True


def start_server(host: str, port: int, wsgi_app: Callable[..., Any]) -> WSGIServer:
    """Serve `wsgi_app` on host:port from a daemon thread; OSError if the port is taken."""
    server = make_server(
        host, port, wsgi_app, server_class=_ThreadingWSGIServer, handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, name="subledger-metrics", daemon=True).start()
    return server
