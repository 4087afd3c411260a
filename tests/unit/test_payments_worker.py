"""The payments worker's pieces: the sandbox's memory of keys, refund requests, the gateway
chosen by configuration, and serve's refusal to charge through the sandbox by default."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from ledger_support import Book, T

from adapters.gateway import IdempotencyKeyReused, SandboxGateway
from adapters.stripe_gateway import StripeGateway
from bootstrap import Config, payment_gateway
from consumers import serve as serving
from consumers.payments import outcome_command, refund_command_id
from domain import commands as c
from domain.ports import ChargeResult, RefundResult
from schemas.records import EventRecord
from verbs import pipeline


def test_the_sandbox_answers_a_repeated_key_with_its_first_answer_across_processes(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "gateway.sqlite")
    first = SandboxGateway(path)
    ok = first.charge(token="tok_visa", amount=1000, currency="USD", idempotency_key="INV-1:1")
    first.close()
    again = SandboxGateway(path)  # another process, after a crash
    assert (
        again.charge(token="tok_visa", amount=1000, currency="USD", idempotency_key="INV-1:1") == ok
    )
    assert ok.succeeded and ok.reference.startswith("ch_")
    assert again.calls() == {"INV-1:1": 2}  # asked twice, charged once
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM charges").fetchone()
    assert rows == (1,)
    with pytest.raises(IdempotencyKeyReused):
        again.charge(token="tok_visa", amount=999, currency="USD", idempotency_key="INV-1:1")


def test_the_sandbox_declines_stripes_test_tokens_and_refunds_at_most_what_was_taken() -> None:
    gw = SandboxGateway()
    declined = gw.charge(
        token="tok_chargeDeclinedExpiredCard", amount=500, currency="USD", idempotency_key="k1"
    )
    assert declined == ChargeResult(
        False, declined.reference, "expired_card", "Your card has expired."
    )
    paid = gw.charge(token="tok_visa", amount=1000, currency="USD", idempotency_key="k2")
    first = gw.refund(
        charge_reference=paid.reference, amount=600, currency="USD", idempotency_key="r1"
    )
    assert first.succeeded and first.reference.startswith("re_")
    too_much = gw.refund(
        charge_reference=paid.reference, amount=600, currency="USD", idempotency_key="r2"
    )
    assert (too_much.succeeded, too_much.code) == (False, "amount_too_large")
    assert (
        gw.refund(charge_reference=paid.reference, amount=600, currency="USD", idempotency_key="r1")
        == first
    )


def test_concurrent_charges_of_one_key_are_one_charge(tmp_path: Path) -> None:
    path = str(tmp_path / "gateway.sqlite")
    answers: list[ChargeResult] = []

    def ask() -> None:
        gw = SandboxGateway(path)
        for _ in range(20):
            answers.append(
                gw.charge(token="tok_visa", amount=700, currency="EUR", idempotency_key="K")
            )
        gw.close()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a.reference for a in answers}) == 1
    assert SandboxGateway(path).calls() == {"K": 80}


def test_a_refund_request_is_made_with_its_key_and_fed_back_as_a_refund_outcome(
    tmp_path: Path,
) -> None:
    book = Book.embedded(tmp_path / "book")
    try:
        book.plan("basic", T(2024, 1, 1))
        book.customer("ada", T(2024, 1, 1))
        book.subscribe("sub", "ada", "basic", T(2024, 1, 2))
        (paid,) = book.events_of("sub", "PaymentSucceeded")
        record = EventRecord(  # RefundRequested as the credit helper records it
            event_id=str(uuid.uuid4()),
            aggregate_type="Subscription",
            type="RefundRequested",
            aggregate_id=str(paid.originator_id),
            version=99,
            at=T(2024, 1, 5),
            meta={"command_id": "refund-1", "correlation_id": "refund-1"},
            data={
                "currency": "USD",
                "credit_note": "CN-000001",
                "invoice_number": "INV-000001",
                "charge_reference": paid.reference,
                "amount": 400,
                "idempotency_key": "CN-000001:refund",
                "status": "active",
                "mrr": 1000,
                "customer_id": "ada",
            },
        )
        command = outcome_command(book.ledger, book.ledger.gateway, record)
        assert command == c.RecordRefundOutcome(
            command_id=refund_command_id("CN-000001:refund"),
            at=T(2024, 1, 5),
            actor="payments",
            source="payments",
            correlation_id="refund-1",
            subscription_id="sub",
            customer_id="ada",
            credit_note="CN-000001",
            succeeded=True,
            reference=command.reference,
            failure_code=None,
            failure_message=None,
        )
        again = book.ledger.gateway.refund(
            charge_reference=paid.reference,
            amount=400,
            currency="USD",
            idempotency_key="CN-000001:refund",
        )
        assert again == RefundResult(True, command.reference)  # the same refund, not another
    finally:
        book.close()


def test_the_gateway_is_chosen_by_configuration(tmp_path: Path) -> None:
    sandbox = payment_gateway(Config(data_dir=tmp_path))
    assert isinstance(sandbox, SandboxGateway)
    sandbox.close()
    assert (tmp_path / "gateway.sqlite").exists()
    stripe_config = Config.from_env(
        {
            "SUBLEDGER_DATA_DIR": str(tmp_path),
            "SUBLEDGER_GATEWAY": "stripe",
            "SUBLEDGER_STRIPE_API_KEY": "sk_test_123",
            "SUBLEDGER_STRIPE_API_BASE": "http://127.0.0.1:12111",
        }
    )
    assert isinstance(payment_gateway(stripe_config), StripeGateway)
    with pytest.raises(ValueError, match="SUBLEDGER_STRIPE_API_KEY"):
        payment_gateway(Config(data_dir=tmp_path, gateway="stripe"))
    with pytest.raises(ValueError, match="sandbox or stripe, not 'paypal'"):
        payment_gateway(Config(data_dir=tmp_path, gateway="paypal"))


def test_serve_refuses_the_payments_worker_on_postgresql_without_an_explicit_gateway(
    tmp_path: Path,
) -> None:
    config = Config(
        data_dir=tmp_path,
        event_store="postgresql://nobody@127.0.0.1:1/none",
        kafka_bootstrap="127.0.0.1:1",
    )
    parts = serving.Parts(runtime=None, projections=list, setup_lock=None, now=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as refused:
        serving.serve(config, ["payments"], parts, install_signals=False)
    message = str(refused.value)
    assert "\n" not in message and "SUBLEDGER_GATEWAY" in message
    assert "payments" in serving.WORKERS
    # `serve` runs every worker unless told otherwise: invoices get paid, messages go out
    assert pipeline.DEFAULT_WORKERS.split(",") == list(serving.WORKERS)


def test_a_request_another_process_recorded_is_checked_against_the_book_not_a_stale_copy(
    tmp_path: Path,
) -> None:
    """Two processes on one data dir: the first cached the subscription before the second
    renewed it and asked for a charge (its gateway did not answer). The first one's payments
    settling must see that charge as pending; from its stale copy it saw none, moved the
    settled position past it, and the invoice stayed open for good."""
    from domain.identity import subscription_uuid
    from domain.ports import GatewayUnavailable
    from domain.subscription.aggregate import Subscription

    first = Book.embedded(tmp_path / "book")
    second = Book.embedded(tmp_path / "book")
    try:
        first.plan("basic", T(2024, 1, 1))
        first.customer("ada", T(2024, 1, 1))
        first.subscribe("sub", "ada", "basic", T(2024, 1, 2))
        cached = first.ledger.get(Subscription, subscription_uuid("sub"))
        assert cached is not None

        def unavailable(**_: object) -> None:
            raise GatewayUnavailable("the gateway did not answer")

        second.ledger.gateway.charge = unavailable  # type: ignore[method-assign]
        second.advance(T(2024, 2, 3))  # renewed: invoiced, a charge asked, no answer yet
        (request,) = [r for r in second.records() if r.name == "Subscription.ChargeRequested"
                      and r.version > cached.version]  # fmt: skip
        command = outcome_command(first.ledger, first.ledger.gateway, request)
        assert isinstance(command, c.RecordChargeOutcome)
        assert (command.invoice_number, command.succeeded) == (request.data["number"], True)
    finally:
        second.close()
        first.close()
