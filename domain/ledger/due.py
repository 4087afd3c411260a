"""Due work: renewals, invoices, charges, retries, trial ends and reminders, in time order.

What is due is asked of the `Schedule` port (a hint from a read model); each subscription
itself decides what is really due and when (`schedule.next_due`). Running due work over many
subscriptions commits in chunks (see `run_due`): it is derived from the book, so a crash
mid-way is finished by running the same command again.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

from domain import commands as c
from domain.books.clock import LedgerClock
from domain.books.command_receipt import CommandReceipt
from domain.errors import UnknownSubscription
from domain.identity import CLOCK_ID
from domain.ledger.billing import bill, collect
from domain.ledger.unit_of_work import UnitOfWork
from domain.subscription import Due, DueKind, Subscription
from domain.subscription import schedule as sched

if TYPE_CHECKING:
    from domain.ledger.service import Ledger

COUNTS = (  # what a clock advance reports it did
    "renewals",
    "invoices",
    "payments_failed",
    "churned",
    "trials_converted",
    "reminders",
    "retries",
    "charges",  # charges asked of the gateway (their failures count in payments_failed)
)


READ_AHEAD = 500  # due items looked at when due work reads subscriptions it let go


def no_work() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def take_effect(ledger: Ledger, uow: UnitOfWork, command: c.Command) -> c.Command:
    """Keep the book in time order: the command takes effect at the ledger clock or later.

    A command dated before the clock takes effect at the clock (its requested time kept
    in its metadata); one dated after first moves the clock to its time, running
    whatever fell due on the way, in time order (counted in `uow.due`). So invoices are
    numbered in the order of their issue times, and every aggregate meets its commands in
    time order.
    """
    clock = uow.find(LedgerClock, CLOCK_ID)
    if clock is not None and command.at < clock.now:
        command = command.taking_effect_at(clock.now)
    if clock is not None and command.at == clock.now:
        # all that is due up to now was done (by this very command, if a redo of its batch)
        uow.due = dict(uow.committed_due.get(command.command_id, no_work()))
        return command
    # only a clock advance settles charges between due items (it commits as it goes, and
    # nothing in it can be refused); any other command keeps "an error records nothing":
    # the charges its due work asks for are settled once it has committed
    settle_as_it_goes = isinstance(command, c.AdvanceClock)
    # a clock advance with nothing of this batch in the unit of work yet (no unrecorded event)
    first_in_batch = settle_as_it_goes and not any(
        agg.pending_events for agg in uow.aggregates.values()
    )
    uow.due = run_due(ledger, uow, command.at, command.meta(actor="scheduler"), settle_as_it_goes)
    if clock is None:
        uow.start(LedgerClock.start(id=CLOCK_ID, at=command.at, meta=command.meta()))
    else:
        clock.move_to(command.at)
        uow.clock_meta = command.meta()
    if first_in_batch:
        # A clock advance's due work is a chunk of its own: committed with the clock's move
        # (nothing in it can be refused, and it is derived from the book, so the advance run
        # again finds it done), so a command refused later in the batch redoes only itself
        # and what follows, not a day of renewals rebuilt from their stored histories.
        ledger.flush(uow)
        uow.keep_only(LedgerClock, CommandReceipt)
        uow.committed_due[command.command_id] = uow.due
    return command


def run_due(
    ledger: Ledger, uow: UnitOfWork, to: datetime, meta: dict, settle_as_it_goes: bool = False
) -> dict[str, int]:
    """Execute everything due up to `to`, in time order; what it did, counted.

    Whenever the unit of work holds `chunk_size` aggregates, all it holds is committed
    (`Ledger.flush`, without the batch's tracking position) and the subscriptions are let
    go, so a year of renewals for many subscriptions never sits in memory at once. What a
    chunk committed stays done even if the batch then fails; the rest is done by the same
    command run again: its receipt is only added once its due work is done, so it is no
    duplicate, and what is left is derived from the book. With `settle_as_it_goes` (a clock
    advance, embedded) the same holds for the charges due items ask for: all those asked at
    one instant are committed and settled by the in-process payments worker before any
    later item, or the same subscription's next one, is done (`settle`).
    """
    settings = ledger.settings
    counts = no_work()
    if ledger.schedule is None:
        return counts
    clock = uow.find(LedgerClock, CLOCK_ID)
    if settle_as_it_goes and ledger.after_commit and clock:
        settle(ledger, uow, clock.now, meta, counts)  # what is pending, before time moves on
    heap: list[tuple[Due, UUID]] = []

    def push(sub: Subscription) -> None:
        known = uow.next_due.get(sub.id)
        if known is not None and known[0] == sub.version:
            due = known[1]  # unchanged since: the same answer (a function of its state)
        else:
            due = sched.next_due(sub, settings.reminders)
            uow.next_due[sub.id] = (sub.version, due)
        if due is not None and due.at <= to:
            heapq.heappush(heap, (due, sub.id))

    due_ids = ledger.schedule.due_subscriptions(to)
    ledger.preload_subscriptions(uow, due_ids)
    for sub_id in due_ids:
        sub = uow.find(Subscription, sub_id)
        if sub is not None:
            push(sub)
    for agg in list(uow.aggregates.values()):  # touched earlier in this very batch
        if isinstance(agg, Subscription):
            push(agg)
    waiting: set[UUID] = set()  # asked for a charge at `instant`: its outcome comes first
    instant = to
    while heap or waiting:
        if waiting and (not heap or heap[0][0].at > instant or heap[0][1] in waiting):
            # every charge asked at this instant, settled at once before time moves on
            touched = {*settle(ledger, uow, instant, meta, counts), *waiting}
            waiting.clear()
            ledger.preload_subscriptions(uow, touched)  # the worker wrote since: read again
            for sub_id in touched:
                push(uow.get(Subscription, sub_id, partial(UnknownSubscription, str(sub_id))))
            continue
        due, sub_id = heapq.heappop(heap)
        if ledger.reads_ahead and sub_id not in uow.aggregates and sub_id not in uow.preloaded:
            # let go after a chunk or a settle: read it with the others due at that instant
            ahead = heapq.nsmallest(READ_AHEAD, heap)
            ledger.preload_subscriptions(uow, [sub_id, *(i for d, i in ahead if d.at == due.at)])
        sub = uow.get(Subscription, sub_id, partial(UnknownSubscription, str(sub_id)))
        if sched.next_due(sub, settings.reminders) != due:
            continue  # stale entry: that work was done or moved
        charges = counts["charges"]
        run_one(ledger, uow, sub, due, meta, counts)
        if settle_as_it_goes and counts["charges"] > charges and ledger.after_commit:
            waiting.add(sub_id)
            instant = due.at
        push(sub)
        if uow.size >= settings.chunk_size:
            ledger.flush(uow)
            uow.keep_only(LedgerClock, CommandReceipt)
    return counts


def settle(
    ledger: Ledger, uow: UnitOfWork, at: datetime, meta: dict, counts: dict[str, int]
) -> tuple[UUID, ...]:
    """Commit what due work did up to `at` (the clock with it), let the in-process payments
    worker settle the charges asked for, and go on from the state it left.

    So `clock advance` plays dunning in time order while the gateway is only ever called
    after commit. The worker's outcomes are commands of their own dated `at`, the clock's
    time by then, so they run no due work; the subscriptions they touched are handed back.
    """
    assert ledger.after_commit is not None
    clock = uow.find(LedgerClock, CLOCK_ID)
    if clock is not None:
        clock.move_to(at)
        uow.clock_meta = uow.clock_meta or meta
    ledger.flush(uow)
    uow.keep_only(LedgerClock, CommandReceipt)  # the worker changes the others in the store
    settled = ledger.after_commit()
    uow.forget_read_ahead()  # the worker wrote to the store since
    counts["payments_failed"] += settled.payments_failed
    counts["churned"] += settled.churned
    return settled.subscriptions


def run_one(
    ledger: Ledger,
    uow: UnitOfWork,
    sub: Subscription,
    due: Due,
    meta: dict,
    counts: dict[str, int],
) -> None:
    """Do one piece of due work; a subscription set to cancel churns instead of renewing."""
    at = due.at
    if due.kind == DueKind.RETRY:
        assert due.invoice is not None
        counts["retries"] += 1
        collect(ledger, uow, sub, due.invoice, at, meta, counts)
    elif due.kind == DueKind.REMIND:
        counts["reminders"] += 1
        sched.remind(sub, at, meta)
    elif due.kind == DueKind.TRIAL_ENDING:
        counts["reminders"] += 1
        sched.warn_trial_ending(sub, at, meta)
    elif sub.cancel_at_period_end:
        counts["churned"] += 1
        sub.churn("voluntary", "canceled_at_period_end", at, meta)
    elif due.kind == DueKind.TRIAL_END:
        counts["trials_converted"] += 1
        sched.convert_trial(sub, at, meta)
        plan = ledger.load_plan(uow, sub.plan_id)
        bill(ledger, uow, sub, plan, "trial_conversion", at, meta, counts)
    elif due.kind == DueKind.RENEW:
        if ledger.load_customer(uow, sub.customer_id).erased:  # nobody left to bill
            counts["churned"] += 1
            sub.churn("involuntary", "customer_erased", at, meta)
            return
        counts["renewals"] += 1
        plan = ledger.load_plan(uow, sub.plan_id)
        sched.renew(sub, at, plan, meta)
        bill(ledger, uow, sub, plan, "renewal", at, meta, counts)


def bring_up_to(
    ledger: Ledger, uow: UnitOfWork, sub: Subscription, at: datetime, meta: dict
) -> None:
    """Run this subscription's own due work up to `at` before a command applies.

    A command may arrive before the clock has been advanced past its time: the
    renewal, retry or cancellation that fell due first is done first, as it would
    have been, so the command meets the state it was aimed at.
    """
    settings, counts = ledger.settings, no_work()
    while True:
        due = sched.next_due(sub, settings.reminders)
        if due is None or due.at > at:
            return
        run_one(ledger, uow, sub, due, meta, counts)
