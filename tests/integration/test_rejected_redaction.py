"""No card number reaches subledger.commands.rejected: what the command worker forwards is
masked (last four digits kept), still decodes, and says so in `subledger.redacted`."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from pipeline_support import Served, Upstream, consume_all, make_config

from bootstrap import Config, Runtime
from domain import commands as c
from domain.books.command_receipt import CommandReceipt
from domain.identity import receipt_uuid
from domain.pci import mask_card_numbers, mask_card_numbers_in_bytes
from schemas import registry, topics
from schemas.codec import CommandCodec

AT = datetime(2025, 5, 1, tzinfo=UTC)
DOTTED = "4242.4242.4242.4242"
FULL_WIDTH = "\uff14\uff12" * 8  # sixteen full-width digits: 4242...
NUMERIC_ID = "4111111111111111"  # a command id that passes Luhn: exempt, kept as it is


@pytest.fixture
def config(services, pg_database_pair, make_topic, tmp_path) -> Config:
    return make_config(services, pg_database_pair, make_topic, tmp_path / "kafka")


def no_card_number(data: bytes | None) -> bool:
    return data is None or mask_card_numbers_in_bytes(data)[1] is False


def register(command_id: str, customer_id: str = "cus-1", **fields: str) -> bytes:
    """RegisterCustomer as an upstream system could send it: the fields given replace the
    valid ones after encoding (the command class itself refuses a card number)."""
    codec = CommandCodec()
    valid = c.RegisterCustomer(
        command_id=command_id,
        at=AT,
        customer_id="cus-1",
        name="Ann",
        email="card@example.com",
        payment_token="tok_visa",
    )
    data = codec.encode(valid)
    schema = parse_schema(codec.writer_schemas()[data[2:10]])
    datum = {**schemaless_reader(io.BytesIO(data[10:]), schema, None), **fields}
    datum["customer_id"] = customer_id
    out = io.BytesIO(data[:10])
    out.seek(10)
    schemaless_writer(out, schema, datum)
    return out.getvalue()


def as_written(value: bytes) -> dict:
    """The datum under the writer schema the message names (any shipped version)."""
    schema = parse_schema(CommandCodec().writer_schemas()[value[2:10]])
    return schemaless_reader(io.BytesIO(value[10:]), schema, None)


def test_card_numbers_are_masked_on_the_rejected_topic_and_the_message_still_decodes(
    config,
) -> None:
    dotted = register("reg-dotted", "cus-dotted", name=DOTTED)
    full_width = register("reg-full-width", customer_id=FULL_WIDTH)
    garbage = f"not avro, card {DOTTED} inside".encode()
    good = c.SetTaxRate(command_id="tax-after", at=AT, country="DE", rate_ppm=190000)

    served = Served(config, ["commands"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            upstream.send_raw(dotted, b"cus-dotted")
            upstream.send_raw(full_width, FULL_WIDTH.encode())
            upstream.send_raw(garbage, b"4111 1111 1111 1111")
            upstream.send(good)
            upstream.wait_applied(runtime.ledger)
            assert runtime.ledger.get(CommandReceipt, receipt_uuid("tax-after")) is not None
            for refused in ("reg-dotted", "reg-full-width"):
                assert runtime.ledger.get(CommandReceipt, receipt_uuid(refused)) is None
            stored = runtime.ledger.recorder.select_notifications(0, 10000)
            assert stored  # the good command's events
            assert all(no_card_number(n.state) for n in stored)
    finally:
        upstream.close()
        served.close()

    rejected = consume_all(config, config.rejected_topic, want=3)
    assert len(rejected) == 3
    for m in rejected:
        headers = dict(m.headers)
        assert headers[topics.H_REDACTED] == b"card_number"
        assert no_card_number(m.value) and no_card_number(m.key)
        assert all(no_card_number(v) for h, v in m.headers if h != topics.H_COMMAND_ID)
    by_key = {m.key: m for m in rejected}

    m = by_key[b"cus-dotted"]
    assert dict(m.headers)[topics.H_ERROR_CODE] == b"card_number_refused"
    # refused while decoding, but its Avro decoded: its id names it for a waiting sender
    assert dict(m.headers)[topics.H_COMMAND_ID] == b"reg-dotted"
    assert dict(m.headers)[topics.H_COMMAND] == b"RegisterCustomer"
    assert m.value[:10] == dotted[:10]  # the same writer schema
    assert as_written(m.value) == {**as_written(dotted), "name": "****.****.****.4242"}
    assert mask_card_numbers(DOTTED) == "****.****.****.4242"
    assert CommandCodec().decode(m.value).name == "****.****.****.4242"  # a command again

    m = by_key[b"*" * 36 + FULL_WIDTH[-4:].encode()]  # the key too, its length kept
    assert dict(m.headers)[topics.H_ERROR_CODE] == b"card_number_refused"
    assert m.value[:10] == full_width[:10]
    assert as_written(m.value) == {
        **as_written(full_width),
        "customer_id": "*" * 12 + FULL_WIDTH[-4:],
    }

    m = by_key[b"**** **** **** 1111"]  # the garbage: masked in place, length kept
    assert dict(m.headers)[topics.H_ERROR_CODE] == b"bad_header"
    assert m.value == b"not avro, card ****.****.****.4242 inside"
    assert len(m.value) == len(garbage)


def test_a_message_without_card_numbers_is_forwarded_byte_for_byte_without_the_header(
    config,
) -> None:
    codec = CommandCodec()
    stranger = c.Subscribe(command_id=NUMERIC_ID, at=AT, subscription_id="s-1",
                           customer_id="nobody", plan_id="basic")  # fmt: skip
    served = Served(config, ["commands"])
    upstream = Upstream(config)
    try:
        with Runtime(config) as runtime:
            upstream.send(stranger)
            upstream.wait_applied(runtime.ledger)
    finally:
        upstream.close()
        served.close()
    [m] = consume_all(config, config.rejected_topic, want=1)
    headers = dict(m.headers)
    assert headers[topics.H_ERROR_CODE] == b"unknown_customer"
    assert headers[topics.H_COMMAND_ID] == NUMERIC_ID.encode()  # exempt: kept whole
    assert topics.H_REDACTED not in headers
    assert m.value == codec.encode(stranger)


def test_redact_masks_strings_and_map_keys_under_any_shipped_writer_schema() -> None:
    codec = CommandCodec()
    # an old writer schema (v1 of RegisterCustomer), a card number in a map key and value
    [(_version, v1), *_later] = registry.history("subledger.commands.RegisterCustomer")
    fp = registry.fingerprint(v1)
    assert fp != codec.fingerprint("RegisterCustomer")  # not the current one
    datum = {
        "command_id": NUMERIC_ID,
        "at": AT,
        "actor": "upstream",
        "source": "crm",
        "correlation_id": NUMERIC_ID,
        "customer_id": "cus-1",
        "name": "Ann",
        "email": "ann@example.com",
        "payment_token": "tok_visa",
        "country": "DE",
        "preferences": {"note 4242-4242-4242-4242": "card 5555 5555 5555 4444"},
    }
    out = io.BytesIO()
    out.write(registry.header(fp))
    schemaless_writer(out, parse_schema(v1), datum)
    redacted, masked = codec.redact(out.getvalue())
    assert masked
    assert redacted[:10] == out.getvalue()[:10]  # the same writer schema, named the same
    assert no_card_number(redacted.replace(NUMERIC_ID.encode(), b""))
    command = codec.decode(redacted)  # still decodes (resolved to the current schema)
    assert command.command_id == NUMERIC_ID and command.correlation_id == NUMERIC_ID
    assert dict(command.preferences) == {"note ****-****-****-4242": "card **** **** **** 4444"}

    clean = register("reg-1")
    assert codec.redact(clean) == (clean, False)
    assert codec.redact(b"\xc3\x01 4242424242424242") == (b"\xc3\x01 ************4242", True)
