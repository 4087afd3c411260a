"""The notifications dispatcher: delivers the outbox's due messages, once per channel.

For each due message: claim it (a ledger command: one claimer wins, and the ledger decides
whether it goes out at all), send it (email over SMTP; in-app and webhook-channel messages
are settled by the claim itself), then record what happened (another command). A message
is due when pending with no live claim, or failed with its retry time reached; `simulate`'s
messages only when asked. A crash between the send and its record leaves a claim that runs
out (`lease_s`): the message is then sent again, with the same Message-ID; once `Sent` is
recorded it never is. Every time here is the wall clock; the commands take effect at the
ledger clock (they never move it, so they never run due work).

Embedded, the CLI runs `deliver` after each command that recorded events (bounded by a
time budget) and `notifications deliver` on demand; in Kafka mode `serve --workers
notifications` runs `run` (the outbox then fed by the notifications projection's group).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from domain import commands as c
from domain.errors import LedgerError
from domain.identity import in_letters
from domain.notifications.messages import EMAIL, Email
from domain.pci import mask_card_numbers
from projections.base import ts
from projections.db import ReadDB
from projections.notifications import REAL, UNSETTLED

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # the CLI prints the counts; `serve` logs these

ACTOR = "notifier"


def wall_clock() -> datetime:
    return datetime.now(UTC)


def one_line(text: str, limit: int = 500) -> str:
    """A server's or an exception's words as one masked line: fit for a command's field."""
    words = " ".join(mask_card_numbers(str(text)).split())
    return "".join(ch for ch in words if ch.isprintable())[:limit]


class Dispatcher:
    """Delivers due outbox messages through `ledger` (claims, outcomes) and `mailer`."""

    def __init__(
        self,
        ledger: Any,
        db: ReadDB,
        renderer: Any,
        *,
        mailer: Any | None = None,
        sender: str = "subledger@localhost",
        lease_s: int = 60,
        catch_up: Callable[[], object] | None = None,
        now: Callable[[], datetime] = wall_clock,
        claimer: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.db = db
        self.renderer = renderer
        self.mailer = mailer
        self.sender = sender
        self.lease_s = lease_s
        self.catch_up = catch_up
        self.now = now
        self.claimer = claimer or in_letters(f"notifier-{os.getpid()}-", uuid.uuid4(), 6)
        self.domain = sender.rpartition("@")[2] or "subledger"
        self.mail_down = False  # this round found the mail server unreachable
        self.on_result: Callable[[str, str], None] | None = None  # (channel, decision): metrics

    # ---- what is due -------------------------------------------------------------------

    def due(self, limit: int = 200, *, include_simulated: bool = False) -> list[dict[str, Any]]:
        """Messages to try now, oldest first (email only when a mail server is configured)."""
        now = ts(self.now())
        where = [
            UNSETTLED,
            "(lease_until IS NULL OR lease_until <= ?)",
            "(next_attempt_at IS NULL OR next_attempt_at <= ?)",
            "event_id <> ''",
        ]
        if not include_simulated:
            where.append(REAL)  # with UNSETTLED: the index of what is due
        if self.mailer is None:
            where.append(f"channel <> '{EMAIL}'")
        return self.db.query(
            f"SELECT * FROM notifications WHERE {' AND '.join(where)}"
            " ORDER BY created_at, rank, message_id LIMIT ?",
            (now, now, limit),
        )

    # ---- delivering --------------------------------------------------------------------

    def deliver(
        self, budget_s: float | None = None, *, include_simulated: bool = False
    ) -> dict[str, int]:
        """Deliver what is due until nothing is, or `budget_s` seconds have gone; counts."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        counts = dict.fromkeys(("sent", "failed", "gave_up", "skipped", "handed_off"), 0)
        counts["taken"] = 0  # claimed or settled by someone else meanwhile
        tried: set[str] = set()
        self.mail_down = False
        while not counts.get("left"):
            if self.catch_up:
                self.catch_up()
            rows = [
                r
                for r in self.due(include_simulated=include_simulated)
                if r["message_id"] not in tried and not (self.mail_down and r["channel"] == EMAIL)
            ]
            if not rows:
                break
            if deadline is not None and time.monotonic() >= deadline:
                counts["left"] = 1  # out of time: the next run goes on
                break
            tried.update(r["message_id"] for r in rows)
            in_place = [r for r in rows if r["channel"] != EMAIL]
            for row, decision in zip(in_place, self.settle_in_place(in_place), strict=True):
                counts[decision] = counts.get(decision, 0) + 1
                self._counted(row["channel"], decision)
            for row in (r for r in rows if r["channel"] == EMAIL):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    counts["left"] = 1  # out of time: the next run goes on
                    break
                if not self.mail_down:  # unreachable: the others keep their attempts
                    decision = self.deliver_one(row, left)
                    counts[decision] = counts.get(decision, 0) + 1
                    self._counted(row["channel"], decision)
        if self.catch_up:
            self.catch_up()
        return counts

    def _counted(self, channel: str, decision: str) -> None:
        if self.on_result is not None and decision != "taken":
            self.on_result(channel, decision)

    def settle_in_place(self, rows: list[dict[str, Any]]) -> list[str]:
        """In-app and webhook-channel messages: the claim alone settles each (nothing is
        sent from here), so many are claimed in one transaction."""
        if not rows:
            return []
        now, at = self.now(), self.ledger.clock_now() or self.now()
        claims = [
            c.ClaimDelivery(
                command_id=f"notify-{uuid.uuid4()}",
                at=at,
                actor=ACTOR,
                source=ACTOR,
                message_id=row["message_id"],
                customer_id=row["customer_id"],
                channel=row["channel"],
                template=row["template"],
                claimer=self.claimer,
                attempted_at=now,
                lease_seconds=self.lease_s,
            )
            for row in rows
        ]
        results = self.ledger.execute_batch(claims)
        return [str(r.outcome["decision"]) if r.ok and r.outcome else "taken" for r in results]

    def deliver_one(self, row: dict[str, Any], budget_s: float | None = None) -> str:
        """Claim, send, record one message; what it came to (a key of `deliver`'s counts)."""
        try:
            outcome = self._execute(
                c.ClaimDelivery,
                message_id=row["message_id"],
                customer_id=row["customer_id"],
                channel=row["channel"],
                template=row["template"],
                claimer=self.claimer,
                attempted_at=self.now(),
                lease_seconds=self.lease_s,
            )
        except LedgerError as exc:  # already sent, claimed by another, not due: not ours
            log.debug("message %s not claimed: %s", row["message_id"], exc)
            return "taken"
        if outcome["decision"] != "claimed":
            return str(outcome["decision"])
        attempt = int(outcome["attempt"])
        result, detail, permanent = "sent", "", False
        try:
            email = self.compose(row)
            if email is None:
                result, detail = "gave_up", "the customer was erased"
            else:
                detail = self.mailer.send(email, timeout=budget_s) if self.mailer else ""
        except Exception as exc:  # DeliveryError, a template problem, the network, ...
            result, detail = "failed", one_line(str(exc) or type(exc).__name__)
            permanent = bool(getattr(exc, "permanent", False))
            self.mail_down = self.mail_down or bool(getattr(exc, "unreachable", False))
            log.warning("message %s attempt %s failed: %s", row["message_id"], attempt, detail)
        recorded = self._record(row, attempt, result, one_line(detail), permanent)
        if result == "failed" and recorded:
            return str(recorded.get("status", "failed"))
        return result

    def _record(
        self, row: dict[str, Any], attempt: int, result: str, detail: str, permanent: bool
    ) -> dict[str, Any] | None:
        """Record the outcome; if that fails the claim runs out and the message is retried."""
        try:
            return self._execute(
                c.RecordDelivery,
                message_id=row["message_id"],
                customer_id=row["customer_id"],
                attempt=attempt,
                result=result,
                detail=detail,
                attempted_at=self.now(),
                permanent=permanent,
            )
        except Exception:
            log.exception("message %s: outcome %s not recorded", row["message_id"], result)
            return None

    def _execute(self, cls: type[c.Command], **fields: Any) -> dict[str, Any]:
        """A command at the ledger clock: it records, never moves the clock."""
        at = self.ledger.clock_now() or self.now()
        command = cls(
            command_id=f"notify-{uuid.uuid4()}", at=at, actor=ACTOR, source=ACTOR, **fields
        )
        return self.ledger.execute(command)

    # ---- composing ---------------------------------------------------------------------

    def context(self, row: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
        """What the template sees: the stored context, the plan's name, who it is for."""
        context = json.loads(row["context"] or "{}")
        plan_id = context.get("plan_id")
        context["plan_name"] = self._plan_name(plan_id) if plan_id else ""
        context["customer"] = {"id": row["customer_id"], "name": profile.get("name") or ""}
        context["message"] = {"id": row["message_id"], "template": row["template"]}
        return context

    def _plan_name(self, plan_id: str) -> str:
        try:
            rows = self.db.query("SELECT name FROM plans WHERE plan_id = ?", (plan_id,))
        except Exception:  # no billing model in this database: the id says it too
            return plan_id
        return str(rows[0]["name"]) if rows else plan_id

    def compose(self, row: dict[str, Any]) -> Email | None:
        """The email, its personal data resolved now through the vault; None if erased."""
        profile = self.ledger.customer_profile(row["customer_id"])
        if profile.get("erased"):
            return None
        rendered = self.renderer.render(row["template"], self.context(row, profile))
        return Email(
            message_id=f"<{row['message_id']}@{self.domain}>",
            sender=self.sender,
            recipient=str(profile["email"]),
            recipient_name=str(profile.get("name") or ""),
            subject=rendered.subject,
            body=rendered.body,
            headers=(("X-Subledger-Template", row["template"]),),
        )

    # ---- Kafka mode: `serve --workers notifications` ------------------------------------

    def run(self, stop: threading.Event, every_s: float = 2.0) -> None:
        """Deliver what is due every `every_s` seconds until `stop`."""
        while not stop.is_set():
            try:
                self.deliver(budget_s=max(every_s * 5, 10.0))
            except Exception:  # a busy or lost database: try again on the next round
                log.exception("notifications: delivery round failed")
            stop.wait(every_s)
