"""Classes that moved module keep their stored topics: old stores resolve to today's classes."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest
from eventsourcing.utils import get_topic, resolve_topic

from domain import topics
from schemas.model import aggregate_classes, event_classes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def stored_topics(book: str, tmp_path: Path) -> set[str]:
    """Every event topic and aggregate topic (originator_topic) a fixture store holds."""
    path = tmp_path / f"{book}.sqlite"
    path.write_bytes(gzip.decompress((FIXTURES / book / "events.sqlite.gz").read_bytes()))
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT topic, state FROM stored_events").fetchall()
    finally:
        db.close()
    found = {topic for topic, _ in rows}
    for topic, state in rows:
        if topic.endswith(
            (".Subscribed", ".Defined", ".Set", ".Started", ".Applied", ".Registered")
        ):
            text = bytes(state).decode()
            start = text.index('"originator_topic":"') + len('"originator_topic":"')
            found.add(text[start : text.index('"', start)])
    return found


def test_every_moved_aggregate_is_registered_under_its_old_module() -> None:
    aggregate_classes()  # imports every module of domain/, so every moved class exists
    moved = {get_topic(cls) for cls in aggregate_classes()} & set(topics.MOVED)
    assert moved == set(topics.MOVED)
    for new_topic, old_module in topics.MOVED.items():
        cls = resolve_topic(new_topic)
        assert topics.REGISTERED[f"{old_module}:{cls.__qualname__}"] is cls


def test_every_registered_old_topic_resolves_to_today_s_class() -> None:
    aggregate_classes()
    assert len(topics.REGISTERED) > len(topics.MOVED)  # the events came along
    for old_topic, cls in topics.REGISTERED.items():
        assert resolve_topic(old_topic) is cls
        qualname = old_topic.partition(":")[2]
        assert qualname == cls.__qualname__
        assert get_topic(cls) == f"{cls.__module__}:{qualname}" != old_topic


def test_every_stored_event_class_has_its_old_topic_registered() -> None:
    aggregate_classes()
    old_subscription = {
        t for t in topics.REGISTERED if t.startswith("domain.subscription:Subscription.")
    }
    today = {f"Subscription.{n}" for n in ("Subscribed", "Paused", "Invoiced", "Churned")}
    assert today <= {t.partition(":")[2] for t in old_subscription}
    moved = {topic.partition(":")[2] for topic in topics.MOVED}  # aggregates born later never moved
    events = {name for name in event_classes() if name.partition(".")[0] in moved}
    registered = {t.partition(":")[2] for t in topics.REGISTERED}
    assert events <= registered  # Customer did not move: its topics are today's


@pytest.mark.parametrize("book", ["book-0.1", "book-0.2"])
def test_every_topic_in_an_old_store_resolves(book: str, tmp_path: Path) -> None:
    aggregate_classes()
    found = stored_topics(book, tmp_path)
    assert "domain.subscription:Subscription" in found  # an aggregate's own topic
    for topic in found:
        cls = resolve_topic(topic)
        assert cls.__qualname__ == topic.partition(":")[2]
        assert topic in topics.REGISTERED or topic.startswith("domain.customer:")


def test_registering_an_old_topic_twice_for_another_class_is_refused() -> None:
    from eventsourcing.utils import TopicError, register_topic

    with pytest.raises(TopicError):
        register_topic("domain.plan:Plan", object)  # type: ignore[arg-type]
