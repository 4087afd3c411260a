"""The Kafka pipeline end to end: commands topic -> ledger -> relay -> events topic ->
projections, on the real broker and PostgreSQL (unique topics, groups and databases)."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader
from pipeline_support import (
    Served,
    Upstream,
    consume_all,
    events_per_command,
    make_config,
    wait_projected,
    wait_stable_group,
)

from bootstrap import Config, Runtime
from consumers import kafka as k
from domain import commands as c
from domain.books.command_receipt import CommandReceipt
from domain.identity import receipt_uuid
from domain.simulation import Simulation
from projections import reports
from projections.base import Projection, get_faults, get_positions
from projections.db import ReadDB
from schemas import topics
from schemas.codec import CommandCodec

AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"


def scenario(customers: int = 12, months: int = 3, seed: int = 7) -> list[c.Command]:
    sim = Simulation(customers=customers, months=months, seed=seed)
    out = list(sim.setup())
    for index in range(sim.days):
        day, commands = sim.day(index)
        out.append(
            c.AdvanceClock(
                command_id=f"sim-{seed}-clock-{index}",
                at=day,
                actor="simulator",
                source="simulator",
            )
        )
        out.extend(commands)
    out.append(
        c.AdvanceClock(
            command_id=f"sim-{seed}-clock-end", at=sim.end, actor="simulator", source="simulator"
        )
    )
    return out


def embedded_answers(tmp_path: Path, commands: list[c.Command]) -> tuple[list, dict]:
    with Runtime(Config(data_dir=tmp_path / "embedded")) as runtime:
        runtime.ledger.execute_batch(commands)
        runtime.catch_up()
        return reports.invoices(runtime.db), reports.mrr(runtime.db)


@pytest.fixture
def config(services, pg_database_pair, make_topic, tmp_path) -> Config:
    return make_config(services, pg_database_pair, make_topic, tmp_path / "kafka")


def test_kafka_pipeline_gives_the_embedded_invoices_and_mrr(config, tmp_path) -> None:
    commands = scenario()
    expected_invoices, expected_mrr = embedded_answers(tmp_path, commands)
    assert expected_invoices, "the scenario should bill something"

    # charges are made by the payments worker after commit; each command
    # waits for the charges it asked for, as the embedded ledger settles them after commit
    config = config.with_overrides(gateway="sandbox")
    served = Served(config, ["commands", "relay", "projections", "payments"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            for command in commands:
                upstream.publish_in_order(runtime.ledger, [command])
                wait_settled(runtime.ledger)
            wait_projected(config, runtime)
            assert reports.invoices(runtime.db) == expected_invoices
            assert reports.mrr(runtime.db) == expected_mrr
    finally:
        upstream.close()
        served.close()


def wait_settled(ledger, timeout: float = 60.0) -> None:
    """Until every charge the ledger asked for has its outcome."""
    deadline = time.monotonic() + timeout
    while True:
        asked, answered, start = set(), set(), 0
        while batch := ledger.recorder.select_notifications(
            start=start, limit=1000, inclusive_of_start=False
        ):
            for n in batch:
                name = n.topic.rpartition(".")[2]
                if name in ("ChargeRequested", "PaymentSucceeded", "PaymentFailed"):
                    e = ledger.mapper.to_domain_event(n)
                    (asked if name == "ChargeRequested" else answered).add((e.number, e.attempt))
            start = batch[-1].id
        if asked <= answered:
            return
        assert time.monotonic() < deadline, f"charges left unsettled: {asked - answered}"
        time.sleep(0.05)


def at(day: int = 1) -> datetime:
    return datetime(2025, 1, day, tzinfo=UTC)


def test_bad_commands_land_on_the_rejected_topic_and_the_next_good_one_applies(config) -> None:
    codec = CommandCodec()
    plan = c.DefinePlan(
        command_id="plan-1",
        at=at(),
        plan_id="basic",
        name="Basic",
        currency="USD",
        pricing={"model": "flat", "amount": 1000, "tiers": []},
        interval="month",
        interval_count=1,
    )
    good = c.SetTaxRate(command_id="tax-after", at=at(2), country="DE", rate_ppm=190000)
    bad_plan = c.DefinePlan(
        command_id="plan-dup",
        at=at(2),
        plan_id="basic",
        name="Again",
        currency="USD",
        pricing={"model": "flat", "amount": 1, "tiers": []},
        interval="month",
        interval_count=1,
    )
    stranger = c.Subscribe(
        command_id="sub-stranger",
        at=at(2),
        subscription_id="s-1",
        customer_id="nobody",
        plan_id="basic",
    )
    body = codec.encode(good)
    garbage = b"this is not avro"
    unknown_fp = b"\xc3\x01" + bytes(8) + body[10:]

    served = Served(config, ["commands"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            upstream.publish_in_order(runtime.ledger, [plan])
            for value in (garbage, unknown_fp):
                upstream.send_raw(value, b"DE")
            upstream.send(bad_plan)
            upstream.send(stranger)
            upstream.send(good)
            upstream.wait_applied(runtime.ledger)
            assert runtime.ledger.get(CommandReceipt, receipt_uuid("tax-after")) is not None
            for rejected_id in ("plan-dup", "sub-stranger"):
                assert runtime.ledger.get(CommandReceipt, receipt_uuid(rejected_id)) is None
    finally:
        upstream.close()
        served.close()

    rejected = consume_all(config, config.rejected_topic, want=4)
    assert len(rejected) == 4
    headers = [{k: v.decode() for k, v in m.headers} for m in rejected]
    by_value = {m.value: h for m, h in zip(rejected, headers, strict=True)}
    assert by_value[garbage][topics.H_ERROR_CODE] == "bad_header"
    assert by_value[unknown_fp][topics.H_ERROR_CODE] == "unknown_schema"
    assert by_value[codec.encode(bad_plan)][topics.H_ERROR_CODE] == "already_exists"
    assert by_value[codec.encode(bad_plan)][topics.H_COMMAND_ID] == "plan-dup"
    assert by_value[codec.encode(stranger)][topics.H_ERROR_CODE] == "unknown_customer"
    assert "nobody" in by_value[codec.encode(stranger)][topics.H_REASON]
    for h in headers:
        assert h[topics.H_REASON] and "\n" not in h[topics.H_REASON]
        assert h[topics.H_SOURCE_TOPIC] == config.commands_topic
        assert {topics.H_SOURCE_PARTITION, topics.H_SOURCE_OFFSET, topics.H_REJECTED_AT} <= set(h)


def test_events_on_the_topic_decode_with_the_avsc_files_alone(config) -> None:
    from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

    by_fp = {}
    for path in AVRO_DIR.glob("subledger.events.*.avsc"):
        schema = load_schema(str(path))
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
        by_fp[fp] = parse_schema(schema)
    tax = c.SetTaxRate(command_id="tax-1", at=at(), country="FR", rate_ppm=200000)

    served = Served(config, ["commands", "relay"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            upstream.publish_in_order(runtime.ledger, [tax])
            head = runtime.ledger.recorder.max_notification_id()
    finally:
        upstream.close()
    try:
        messages = consume_all(config, config.events_topic, want=head)
    finally:
        served.close()
    assert len(messages) == head
    for m in messages:
        assert m.value[:2] == b"\xc3\x01"
        datum = schemaless_reader(io.BytesIO(m.value[10:]), by_fp[m.value[2:10]], None)
        owner = datum["data"].get("customer_id")  # a customer's events share their key
        keyed_by_customer = datum["aggregate_type"] in ("Customer", "Subscription")
        assert m.key.decode() == (owner if keyed_by_customer else str(datum["aggregate_id"]))
        assert dict(m.headers)[topics.H_NOTIFICATION_ID]
        assert datum["meta"]["command_id"] == "tax-1"
        assert (
            dict(m.headers)[topics.H_EVENT] == f"{datum['aggregate_type']}.{datum['type']}".encode()
        )
    assert "200000" in json.dumps(datum["data"], default=str)


def test_two_command_workers_share_partitions_and_apply_each_command_once(config) -> None:
    from consumers.commands import CommandWorker
    from consumers.kafka import ensure_topics

    ensure_topics(config)
    stop = threading.Event()
    runtimes = [Runtime(config), Runtime(config)]
    workers = {
        f"pytest-worker-{i}": CommandWorker(
            config, rt.ledger, poll_ms=200, client_id=f"pytest-worker-{i}"
        )
        for i, rt in enumerate(runtimes)
    }
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers.values()]
    for t in threads:
        t.start()
    upstream = Upstream(config)
    try:
        # the broker's word that both are members, each consuming its own partitions
        shares = wait_stable_group(config, f"{config.group_prefix}-ledger", workers)
        assert sorted(p for parts in shares.values() for p in parts) == [0, 1, 2]
        commands = [
            c.RegisterCustomer(
                command_id=f"reg-{i}",
                at=at(),
                customer_id=f"cust-{i}",
                name=f"Customer {i}",
                email=f"c{i}@example.com",
                payment_token="tok_visa",
                country="DE",
            )
            for i in range(200)
        ]
        for command in commands:
            upstream.send(command)
        for command in commands[:20]:  # repeated ids: no second effect
            upstream.send(command)
        upstream.wait_applied(runtimes[0].ledger)
        counts = events_per_command(runtimes[0].ledger)
        for i in range(200):  # one effect each, the repeats included
            assert counts[f"reg-{i}", "Customer.Registered"] == 1
            assert counts[f"reg-{i}", "CommandReceipt.Applied"] == 1
        assert set(counts.values()) == {1}  # no event recorded twice
        # every message handled once, and each member handled its share
        assert sum(w.applied for w in workers.values()) == 220
        assert all(w.applied > 0 for w in workers.values()), [w.applied for w in workers.values()]
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        upstream.close()
        for rt in runtimes:
            rt.close()


def test_in_kafka_mode_a_direct_command_reaches_the_read_models_once_through_kafka(
    config, tmp_path
) -> None:
    """The read models belong to the Kafka projectors: the CLI's direct path never feeds them."""
    commands = scenario(customers=4, months=2, seed=5)
    config = config.with_overrides(gateway="sandbox")
    with Runtime(config) as runtime:
        runtime.ledger.execute_batch(commands)
        assert runtime.catch_up() == 0
        assert reports.invoices(runtime.db) == []  # nothing written behind Kafka's back
        # the charges this batch asked for are made by the Kafka payments
        # worker, after the whole batch: their outcomes (and so dunning) come after it too
        served = Served(config, ["commands", "relay", "projections", "payments"])
        try:
            wait_settled(runtime.ledger)
            wait_projected(config, runtime)
            kafka_invoices = reports.invoices(runtime.db)
            kafka_payments = reports.payments(runtime.db)
        finally:
            served.close()
        outcomes = [
            r
            for r in runtime.feeder.records(0, 1_000_000)
            if r.name in ("Subscription.PaymentSucceeded", "Subscription.PaymentFailed")
        ]
    invoices, _mrr = embedded_answers(tmp_path, commands)
    charged = ("status", "amount_paid", "attempts")
    assert [{k: v for k, v in i.items() if k not in charged} for i in kafka_invoices] == [
        {k: v for k, v in i.items() if k not in charged} for i in invoices
    ]
    assert len(kafka_payments) == len(outcomes)  # each outcome projected once
    assert len(invoices) > 4


def test_two_relays_on_one_store_publish_each_event_once(config, tmp_path) -> None:
    """One relay publishes at a time (a PostgreSQL advisory lock); the other stands by."""
    from consumers.kafka import ensure_topics
    from consumers.relay import Relay

    ensure_topics(config)
    commands = scenario(customers=3, months=1, seed=11)
    with Runtime(config) as runtime:
        runtime.ledger.execute_batch(commands)
        head = runtime.ledger.recorder.max_notification_id()
        stop = threading.Event()
        relays = [Relay(config, runtime.ledger), Relay(config, runtime.ledger)]
        threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in relays]
        for thread in threads:
            thread.start()
        try:
            messages = consume_all(config, config.events_topic, want=head, timeout=60)
            time.sleep(1.0)  # give a second publisher, were there one, time to show itself
            messages = consume_all(config, config.events_topic, want=head + 1, timeout=3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    ids = [dict(m.headers)[topics.H_NOTIFICATION_ID] for m in messages]
    assert len(ids) == head and len(set(ids)) == head
    assert sorted(r.published for r in relays) == [0, head]


def test_a_customers_moves_across_subscriptions_classify_as_embedded(config, tmp_path) -> None:
    """A customer leaving one subscription and taking another in the same instant: their
    events share the customer's key, so Kafka-fed metrics see them in the ledger's order."""
    t0, t1 = at(1), at(20)
    commands: list[c.Command] = [
        c.DefinePlan(command_id="basic", at=t0, plan_id="basic", name="Basic", currency="USD",
                     pricing={"model": "flat", "amount": 1000, "tiers": []}),
        c.DefinePlan(command_id="pro", at=t0, plan_id="pro", name="Pro", currency="USD",
                     pricing={"model": "flat", "amount": 3000, "tiers": []}),
    ]  # fmt: skip
    for i in range(8):
        commands += [
            c.RegisterCustomer(command_id=f"reg-{i}", at=t0, customer_id=f"cus-{i}", name="C",
                               email=f"c{i}@example.com", payment_token="tok_visa"),
            c.Subscribe(command_id=f"a-{i}", at=t0, customer_id=f"cus-{i}", plan_id="basic",
                        subscription_id=f"a-{i}"),
            c.Cancel(command_id=f"x-{i}", at=t1, subscription_id=f"a-{i}", immediately=True),
            c.Subscribe(command_id=f"b-{i}", at=t1, customer_id=f"cus-{i}", plan_id="pro",
                        subscription_id=f"b-{i}"),
        ]  # fmt: skip
    movements = "SELECT customer_id, kind, delta FROM mrr_movements ORDER BY customer_id, at, kind"
    with Runtime(Config(data_dir=tmp_path / "embedded")) as runtime:
        runtime.ledger.execute_batch(commands)
        runtime.catch_up()
        expected = runtime.db.query(movements)
    assert [m["kind"] for m in expected if m["customer_id"] == "cus-0"] == [
        "new", "churn", "reactivation"
    ]  # fmt: skip
    with Runtime(config) as runtime:
        runtime.ledger.execute_batch(commands)
        served = Served(config, ["relay", "projections"])
        try:
            wait_projected(config, runtime)
            assert runtime.db.query(movements) == expected
            head = runtime.ledger.recorder.max_notification_id()
        finally:
            served.close()
    partitions: dict[str, set[int]] = {}
    for m in consume_all(config, config.events_topic, want=head):
        if m.key.decode().startswith("cus-"):
            partitions.setdefault(m.key.decode(), set()).add(m.partition)
    assert len(partitions) == 8
    assert all(len(p) == 1 for p in partitions.values()), partitions  # one partition each


def test_kafka_fed_read_models_rebuilt_from_the_store_resume_without_doubles(
    config, tmp_path
) -> None:
    """Every read model rebuilt in one pass over the store (`projections rebuild --all`):
    the same rows, each model's duplicate guard written, and the groups resume after it."""
    from consumers.projector import rebuild_from_store

    first = scenario(customers=4, months=2, seed=3)
    later = [
        c.RegisterCustomer(command_id="late-reg", at=at(28), customer_id="late", name="L",
                           email="late@example.com", payment_token="tok_visa"),
        c.Subscribe(command_id="late-sub", at=at(28), customer_id="late", plan_id="pro",
                    subscription_id="late-sub"),
    ]  # fmt: skip
    dump = "SELECT * FROM invoices ORDER BY number"
    moves = "SELECT * FROM mrr_movements ORDER BY event_id"
    sent = "SELECT message_id, template, status FROM notifications ORDER BY message_id"
    with Runtime(config) as runtime:
        runtime.ledger.execute_batch(first)
        served = Served(config, ["relay", "projections"])
        try:
            wait_projected(config, runtime)
        finally:
            served.close()
        before = [runtime.db.query(q) for q in (dump, moves, sent)]
        head = runtime.ledger.recorder.max_notification_id()
        assert rebuild_from_store(config, runtime.ledger, runtime.projections, runtime.db) == head
        assert [runtime.db.query(q) for q in (dump, moves, sent)] == before
        guards = runtime.db.query(
            "SELECT projection, COUNT(*) AS n FROM projection_versions GROUP BY projection"
        )
        assert {r["projection"] for r in guards} == {p.name for p in runtime.projections}
        assert len({r["n"] for r in guards}) == 1  # every aggregate, for each of them
        runtime.ledger.execute_batch(later)
        served = Served(config, ["relay", "projections"])
        try:
            wait_projected(config, runtime)
        finally:
            served.close()
        after = runtime.db.query(dump)
        moved = runtime.db.query(moves)
    assert after[: len(before[0])] == before[0]
    assert [row["subscription_id"] for row in after[len(before[0]) :]] == ["late-sub"]
    assert len(moved) == len(before[1]) + 1  # the late subscription's "new", once


def test_the_wall_clock_scheduler_advances_the_ledger_to_the_current_minute(config) -> None:
    from bootstrap import serve
    from consumers.kafka import ensure_topics

    ensure_topics(config)
    stop = threading.Event()
    thread = threading.Thread(
        target=serve,
        args=(config, ["commands", "scheduler"]),
        kwargs={"clock": "wall", "tick_s": 0.5, "stop": stop, "install_signals": False},
        daemon=True,
    )
    thread.start()
    try:
        with Runtime(config) as runtime:
            deadline = time.monotonic() + 60
            while runtime.ledger.clock_now() is None:
                assert time.monotonic() < deadline, "the scheduler never advanced the clock"
                time.sleep(0.3)
            now = datetime.now(UTC)
            clock = runtime.ledger.clock_now()
            assert clock.second == 0 and timedelta(0) <= now - clock < timedelta(minutes=2)
    finally:
        stop.set()
        thread.join(60)


class Fragile(Projection):
    """A read model with a bug: its handler for Subscription.Subscribed always raises."""

    name = "pytest_fragile"
    reason = "trial_days"  # what the fault says
    tables = {
        "pytest_fragile": "CREATE TABLE IF NOT EXISTS pytest_fragile ("
        " position BIGINT PRIMARY KEY, event TEXT NOT NULL, aggregate_id TEXT NOT NULL)"
    }

    def apply(self, db, record) -> None:
        if record.name == "Subscription.Subscribed":
            raise KeyError("trial_days")  # the bug
        db.execute(
            "INSERT INTO pytest_fragile (position, event, aggregate_id) VALUES (?, ?, ?)",
            (record.position, record.name, record.aggregate_id),
        )


class Brittle(Fragile):
    """A read model whose bug PostgreSQL finds: Subscription.Subscribed's row has a position
    too big for a BIGINT, so the write fails when its batch is sent, after the handler
    returned, and after the batch's commit was left to the sender (`settle`)."""

    reason = "out of range"

    def apply(self, db, record) -> None:
        if record.name == "Subscription.Subscribed":
            record = dataclasses.replace(record, position=2**63)
        db.execute(
            "INSERT INTO pytest_fragile (position, event, aggregate_id) VALUES (?, ?, ?)",
            (record.position, record.name, record.aggregate_id),
        )


@pytest.mark.parametrize("kind", [Fragile, Brittle])
def test_a_projection_that_fails_on_an_event_stops_that_partition_only_and_says_where(
    config, kind: type[Fragile]
) -> None:
    from kafka import TopicPartition

    from consumers.kafka import ensure_topics
    from consumers.projector import ProjectionWorker, source, status

    ensure_topics(config)
    plan = c.DefinePlan(command_id="plan", at=at(), plan_id="basic", name="Basic", currency="USD",
                        pricing={"model": "flat", "amount": 1000, "tiers": []})  # fmt: skip
    registered = [
        c.RegisterCustomer(command_id=f"reg-{i}", at=at(), customer_id=f"cus-{i}", name="C",
                           email=f"c{i}@example.com", payment_token="tok_visa")
        for i in range(12)
    ]  # fmt: skip
    boom = c.Subscribe(command_id="sub-boom", at=at(2), customer_id="cus-0", plan_id="basic",
                       subscription_id="boom")  # fmt: skip
    cancel = c.Cancel(command_id="cancel-boom", at=at(2), subscription_id="boom", immediately=True)
    later = [
        c.RegisterCustomer(command_id=f"late-{i}", at=at(3), customer_id=f"late-{i}", name="L",
                           email=f"l{i}@example.com", payment_token="tok_visa")
        for i in range(12)
    ]  # fmt: skip
    fragile = kind()
    stop = threading.Event()
    with Runtime(config) as runtime:
        runtime.ledger.execute_batch([plan, *registered, boom, cancel])
        served = Served(config, ["relay"])
        try:
            head = runtime.ledger.recorder.max_notification_id()
            messages = consume_all(config, config.events_topic, want=head, timeout=60)
            assert len(messages) == head
            failing = next(
                m for m in messages
                if dict(m.headers)[topics.H_EVENT] == b"Subscription.Subscribed"
            )  # fmt: skip
            stuck_at = source(config.events_topic, failing.partition)
            same = [m for m in messages if m.partition == failing.partition]
            assert any(m.offset > failing.offset for m in same)  # events after it wait
            assert {m.partition for m in messages} == {0, 1, 2}  # the others go on
            worker = ProjectionWorker(config, fragile, poll_ms=200)
            thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
            db = ReadDB(config.read_db_url())  # as `projections status` reads: its own
            thread.start()
            try:
                deadline = time.monotonic() + 60
                while not get_faults(db, fragile.name) or lagging(config, db, failing):
                    assert thread.is_alive(), "the worker died on the projection's bug"
                    assert time.monotonic() < deadline, (
                        "the fault or the other partitions never came"
                    )
                    time.sleep(0.2)
                [fault] = get_faults(db, fragile.name)
                assert (fault["source"], fault["position"]) == (stuck_at, failing.offset)
                assert fault["event"] == "Subscription.Subscribed"
                assert kind.reason in fault["reason"] and "\n" not in fault["reason"]
                # the events before it on its partition, and every other partition's, applied
                assert applied_positions(db) == expected_positions(messages, failing)
                assert get_positions(db, fragile.name)[stuck_at] == failing.offset
                assert thread.is_alive()
                assert any(tp.partition == failing.partition for tp in worker.consumer.paused())
                assert status(config, runtime.ledger, [fragile], db)["stuck"] == [fault]

                # the worker keeps serving the other partitions; the stuck one stays stopped
                before = expected_positions(messages, failing)
                runtime.ledger.execute_batch(later)
                head = runtime.ledger.recorder.max_notification_id()
                messages = consume_all(config, config.events_topic, want=head, timeout=60)
                deadline = time.monotonic() + 60
                while applied_positions(db) != expected_positions(messages, failing):
                    assert time.monotonic() < deadline, "later events on other partitions"
                    time.sleep(0.2)
                assert applied_positions(db) > before  # later events were applied
            finally:
                stop.set()
                thread.join(30)
                db.close()
            assert not thread.is_alive()

            # a new worker (a restart) leaves the stuck partition where it stopped
            stop = threading.Event()
            worker = ProjectionWorker(config, fragile, poll_ms=200)
            try:
                deadline = time.monotonic() + 60
                while not any(tp.partition == failing.partition for tp in worker.consumer.paused()):
                    worker.poll_once()
                    assert time.monotonic() < deadline, "the stuck partition was not paused"
                for _ in range(5):
                    worker.poll_once()
                worker.settle()
                db = worker.db
                assert applied_positions(db) == expected_positions(messages, failing)
                assert [f["position"] for f in get_faults(db, fragile.name)] == [failing.offset]
                # events past the fault fetched in the same poll as it (before the pause)
                # are not applied either
                past = [
                    m for m in messages
                    if m.partition == failing.partition and m.offset > failing.offset
                ]  # fmt: skip
                assert past
                stuck = TopicPartition(config.events_topic, failing.partition)
                assert worker.handle({stuck: past}) == 0
                worker.settle()
                assert applied_positions(db) == expected_positions(messages, failing)
            finally:
                worker.close()
        finally:
            served.close()


def applied_positions(db) -> set[int]:
    return {int(r["position"]) for r in db.query("SELECT position FROM pytest_fragile")}


def expected_positions(messages, failing) -> set[int]:
    """Notification ids Fragile stores: all but Subscribed, and none on the failing
    partition from the failing offset on."""
    return {
        int(dict(m.headers)[topics.H_NOTIFICATION_ID])
        for m in messages
        if dict(m.headers)[topics.H_EVENT] != b"Subscription.Subscribed"
        and (m.partition != failing.partition or m.offset < failing.offset)
    }


def lagging(config, db, failing) -> bool:
    """Whether a partition other than the failing one is behind its end offset."""
    from consumers.kafka import end_offsets
    from consumers.projector import source

    stored = get_positions(db, Fragile.name)
    ends = end_offsets(config, config.events_topic, "pytest-lag")
    return any(
        stored.get(source(tp.topic, tp.partition), 0) < end
        for tp, end in ends.items()
        if tp.partition != failing.partition
    )


def paid(runtime: Runtime) -> int:
    found = runtime.db.query("SELECT COUNT(*) AS n FROM payments WHERE outcome = 'succeeded'")
    return int(found[0]["n"])


def test_an_undecodable_event_goes_to_the_dead_letter_topic_and_nothing_stops(config) -> None:
    """Poison on the events topic (not Avro, a charge request's header so the payments worker
    reads it too): every worker that reads it copies it to `<events>.dead-letter` with why and
    where, and goes on; what comes after is projected and charged. A read model that has no
    use for a charge request (webhooks) passes it by undecoded, as it does every such event."""
    from consumers.kafka import dead_letter_topic

    config = config.with_overrides(gateway="sandbox")
    served = Served(config, ["commands", "relay", "projections", "payments"])
    producer = k.producer(config, client_id="pytest-poison")
    upstream = Upstream(config)
    poison = b"\x00 this is not an event"
    try:
        headers = [(topics.H_EVENT, b"Subscription.ChargeRequested")]
        producer.send(config.events_topic, key=b"x", value=poison, headers=headers).get(30)
        with Runtime(config) as runtime:
            commands = scenario(customers=3, months=1, seed=3)
            upstream.publish_in_order(runtime.ledger, commands)
            wait_projected(config, runtime)
            paid = runtime.db.query(
                "SELECT COUNT(*) AS n FROM payments WHERE outcome = 'succeeded'"
            )
            assert paid[0]["n"] > 0  # charged after the poison
            invoices = runtime.db.query("SELECT COUNT(*) AS n FROM invoices")[0]["n"]
            assert invoices > 0
    finally:
        producer.close()
        upstream.close()
        served.close()
    charge = "Subscription.ChargeRequested"
    readers = [p.name for p in runtime.projections if p.wants(charge)]
    assert readers == ["billing", "metrics", "notifications", "exports"]
    workers = {"payments"} | {f"projection-{name}" for name in readers}
    dead = consume_all(config, dead_letter_topic(config), want=len(workers))
    assert len(dead) == len(workers)
    seen = set()
    for m in dead:
        h = {name: value.decode() for name, value in m.headers}
        assert m.value == poison and h[topics.H_SOURCE_TOPIC] == config.events_topic
        assert h[topics.H_REASON] and {topics.H_SOURCE_PARTITION, topics.H_SOURCE_OFFSET} <= set(h)
        seen.add(h["subledger.worker"])
    assert seen == workers
