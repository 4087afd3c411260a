"""For auditors: `audit reconcile` checks the read models against a rebuild from the store;
`subject_access` gathers what `customer export` writes for a GDPR subject-access request."""

from __future__ import annotations

import time
from typing import Any

import click

from domain.errors import InvalidInput
from verbs.app import App
from verbs.errors import Failure
from verbs.options import format_option
from verbs.render import show

KAFKA_ATTEMPTS = 3  # the book moved during a check this many times: give up, say so


@click.group()
def audit() -> None:
    """For auditors: check the read models against the event store, and the store itself."""


@audit.command("reconcile")
@click.option(
    "--projection",
    "names",
    multiple=True,
    help="A read model to check (repeatable; default all, see 'projections status').",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, 86_400, min_open=True),
    default=60.0,
    show_default=True,
    help="With Kafka: seconds to wait for the projectors to catch up with the event store.",
)
@format_option
@click.pass_obj
def audit_reconcile(app: App, names: tuple[str, ...], timeout: float, fmt: str) -> None:
    """Rebuild the read models from the event store into scratch tables and compare them
    row by row with the live ones.

    Prints every difference (projection, table, row key, column, live and rebuilt value;
    missing and extra rows; stuck projections) and exits 1 if there is any; otherwise
    prints one line: N tables, M rows: identical. The scratch tables are dropped after.
    """
    from projections.reconcile import COLUMNS, reconcile, summary

    app.warn_stuck = False  # a stuck projection is one of the differences
    runtime = app.runtime
    chosen = _chosen(runtime.projections, names)
    if runtime.kafka_mode:
        report = _kafka(app, chosen, timeout)
    else:
        report = reconcile(runtime.ledger, runtime.db, chosen)
    if report.identical:
        click.echo(summary(report))
        return
    show([d.row() for d in report.differences], fmt, columns=COLUMNS)
    raise Failure(summary(report))


def _chosen(projections: list[Any], names: tuple[str, ...]) -> list[Any]:
    known = {p.name: p for p in projections}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            f"--projection: unknown read model '{unknown[0]}' (known: {', '.join(known)})"
        )
    return [known[n] for n in dict.fromkeys(names)] if names else list(projections)


def _kafka(app: App, chosen: list[Any], timeout: float) -> Any:
    """The Kafka projectors' tables, compared once they have caught up with the store's head;
    a book that moves during the check is checked again."""
    from consumers.projector import caught_up, status
    from projections.reconcile import Report, reconcile, stuck

    runtime = app.runtime
    recorder = runtime.ledger.recorder
    deadline = time.monotonic() + timeout
    report = None
    for _ in range(KAFKA_ATTEMPTS):
        while True:
            head = recorder.max_notification_id() or 0
            state = status(app.config, runtime.ledger, chosen, runtime.db)
            if state["stuck"]:  # a paused partition never catches up: that is the finding
                return Report([stuck(fault) for fault in state["stuck"]])
            if caught_up(state) and state["head"] == head:
                break
            if time.monotonic() > deadline:
                behind = max((r["lag"] for r in state["partitions"]), default=0)
                raise Failure(
                    f"the read models have not caught up with the event store within"
                    f" {timeout:g}s (relayed {state['relay']} of {state['head']} events,"
                    f" up to {behind} behind on a partition): is 'subledger serve' running?"
                    " Try again with a longer --timeout"
                )
            time.sleep(0.25)
        report = reconcile(runtime.ledger, runtime.db, chosen, head=head)
        if report.identical or (recorder.max_notification_id() or 0) == head:
            return report
    return report


# ---- tamper evidence: the hash chain beside the events (adapters/chain_recorder.py) --------


def _chained_recorder(app: App) -> Any:
    from adapters.chain_recorder import chained

    recorder = app.runtime.ledger.recorder
    if not chained(recorder):
        raise Failure("this event store keeps no hash chain")
    return recorder


def _require_sealed(recorder: Any) -> None:
    """A store with events but no chain (written before it existed) must be sealed first;
    an empty one is chained from its first event."""
    if not recorder.chain_sealed() and recorder.max_notification_id():
        raise Failure("not sealed: run 'subledger audit seal' to chain this store's events")


@audit.command("verify")
@click.option(
    "--from",
    "start",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Check from this log position; the rows before it are taken as chained.",
)
@click.option(
    "--expect-head",
    "expect",
    metavar="HASH",
    help="A checkpoint hash anchored earlier ('audit head'): it must be in the chain.",
)
@format_option
@click.pass_obj
def audit_verify(app: App, start: int, expect: str | None, fmt: str) -> None:
    """Recompute the hash chain over every stored event and compare it with the stored one.

    Exits 1 naming the first broken place (log position, aggregate, version) and what is
    wrong: a hash mismatch (an edited or swapped row), a missing row, an extra row, or the
    order. See README "Tamper evidence" for the algorithm.
    """
    from adapters.chain_recorder import verify_store

    recorder = _chained_recorder(app)
    _require_sealed(recorder)
    end = recorder.max_notification_id() or 0
    if start > max(end, 1):
        raise Failure(f"--from: the log ends at position {end}; give a position up to it")
    expect = expect.strip().lower() if expect else None
    verdict = verify_store(recorder, start, expect)
    if verdict.finding is not None:
        raise Failure(f"chain broken at {verdict.finding.line()}")
    if expect is not None and not verdict.expected_seen:
        raise Failure(
            f"--expect-head: no checkpoint from position {start} on has the hash {expect}:"
            " the chain was rewritten after it was anchored, or the hash is not this store's"
        )
    show(
        {
            "status": "intact",
            "from": start,
            "rows": verdict.rows,
            "head": verdict.head,
            "position": verdict.position,
        },
        fmt,
    )


@audit.command("head")
@format_option
@click.pass_obj
def audit_head(app: App, fmt: str) -> None:
    """Print the latest checkpoint: the log hash of the last stored event and its position,
    to anchor outside the system (a signed timestamp, a ticket)."""
    from domain.chain import GENESIS

    recorder = _chained_recorder(app)
    _require_sealed(recorder)
    head = recorder.chain_head()
    genesis = (GENESIS.hex(), 0)
    log_hash, position = (head.log_hash, head.position) if head else genesis
    show({"head": log_hash, "position": position}, fmt)


@audit.command("seal")
@format_option
@click.pass_obj
def audit_seal(app: App, fmt: str) -> None:
    """Chain a store written before the chain existed, once, from its first event; the
    seal is recorded as an event (AuditChain.Sealed, under the chain too) and the events
    themselves are not rewritten."""
    import uuid

    from adapters.chain_recorder import AlreadySealed

    recorder = _chained_recorder(app)
    if recorder.chain_sealed():
        raise Failure("this store is sealed already: 'subledger audit verify' checks it")
    before = recorder.max_notification_id() or 0
    if not before:
        raise Failure("this store has no events: it is chained from its first one")
    command_id = str(uuid.uuid4())
    meta = {
        "command_id": command_id,
        "command": "audit seal",
        "correlation_id": command_id,
        "actor": app.config.actor,
        "source": "cli",
    }
    # an earlier seal cut short recorded its event already: this run finishes it
    app.runtime.ledger.record_audit_seal(before, app.now(), meta)
    try:
        count, last = recorder.seal()
    except AlreadySealed:  # another `audit seal` finished first
        raise Failure("this store is sealed already: 'subledger audit verify' checks it") from None
    assert last is not None  # the seal's own event at least
    show(
        {"status": "sealed", "rows": count, "head": last.log_hash, "position": last.position},
        fmt,
    )


# ---- GDPR: everything held about one customer (`customer export`) -------------------------

CIPHERTEXT = frozenset({"personal", "note"})  # event fields under the customer's own key
NOTIFICATION_FIELDS = ("message_id", "template", "channel", "status", "created_at", "attempts")
NOTIFICATION_TIMES = ("sent_at", "read_at")


def subject_access(app: App, customer_id: str) -> dict[str, Any]:
    """All personal data held for a customer, decrypted, and their history, for a subject-
    access request; once erased, only what remains (ids, amounts, dates) and `erased`."""
    from domain.identity import customer_uuid, subscription_uuid
    from projections import reports
    from schemas.records import to_record

    runtime = app.runtime
    ledger, db = runtime.ledger, runtime.db
    profile = ledger.customer_profile(customer_id)  # unknown: the error says so
    erased = bool(profile.pop("erased"))
    key = str(customer_uuid(customer_id))
    subs = reports.subscriptions(db, customer=customer_id)
    histories = [ledger.history(customer_uuid(customer_id))]
    histories += [ledger.history(subscription_uuid(s["subscription_id"])) for s in subs]
    events, notes = [], []
    for event in sorted((e for h in histories for e in h), key=_when):
        record = to_record(event)
        if record.name == "Customer.NoteRecorded":
            text = None if erased else (ledger.vault.decrypt(key, event.note) or {}).get("text")
            note = {"at": record.at, "channel": event.channel, "actor": record.meta.get("actor")}
            notes.append({**note, **({"text": text} if text is not None else {})})
        events.append(
            {
                "at": record.at,
                "event": record.name,
                "aggregate_id": record.aggregate_id,
                "version": record.version,
                "actor": record.meta.get("actor"),
                "source": record.meta.get("source"),
                "command_id": record.meta.get("command_id"),
                "recorded_at": record.meta.get("recorded_at"),
                "data": {k: v for k, v in record.data.items() if k not in CIPHERTEXT},
            }
        )
    messages = [
        {
            **{k: m[k] for k in NOTIFICATION_FIELDS},
            **{k: m[k] for k in NOTIFICATION_TIMES if m.get(k)},
        }
        for m in db.query(
            "SELECT * FROM notifications WHERE customer_id = ? AND event_id <> ''"
            " ORDER BY created_at, rank, channel",
            (customer_id,),
        )
    ]
    return {
        "customer_id": customer_id,
        "erased": erased,
        "profile": profile,  # decrypted; erased: the country alone
        "support_notes": notes,
        "subscriptions": subs,
        "invoices": reports.invoices(db, customer=customer_id),
        "payments": reports.payments(db, customer=customer_id),
        "credit_notes": reports.credit_notes(db, customer=customer_id),
        "credit_movements": reports.customer_credit(db, customer_id),
        "notifications": messages,
        "events": events,
    }


def _when(event: Any) -> tuple[Any, str, int]:
    """Effective time, then aggregate and version: one stable order across aggregates."""
    return (event.timestamp, str(event.originator_id), event.originator_version)


COMMANDS: list[click.Command] = [audit]
