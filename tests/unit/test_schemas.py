"""The shipped Avro contract: matches the domain classes, documents itself, stays readable.

These tests are what keeps the contract from drifting silently: a domain field without a
schema field (or the reverse), an undocumented field, an edited shipped version, or a
historical version the current codec can no longer read all fail here.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import load_schema

from domain.commands import COMMANDS, Command
from schemas import docs, generate, model, registry
from schemas.codec import CommandCodec, DecodeError, EventCodec
from schemas.records import STANDARD, EventRecord

SHIPPED = [
    (name, number)
    for name in registry.history_names()
    for number, _schema in registry.history(name)
]
CURRENT = registry.current_names()


def sample(schema: Any, named: dict[str, Any] | None = None) -> Any:
    """A valid datum for any Avro schema (expanded, with full names)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        if schema in named:
            return sample(named[schema], named)
        return {
            "string": "sample",
            "long": 7,
            "int": 7,
            "boolean": True,
            "null": None,
            "double": 1.5,
            "float": 1.5,
            "bytes": b"x",
        }[schema]
    if isinstance(schema, list):
        branch = next((b for b in schema if b != "null"), "null")
        return sample(branch, named)
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "timestamp-micros":
        return datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=UTC)
    if logical == "uuid":
        return str(uuid.uuid4())
    if logical == "json":
        return json.dumps({"sample": [1, None]})
    if kind == "record":
        named[schema["name"]] = schema
        out = {}
        for f in schema["fields"]:
            value = sample(f["type"], named)
            out[f["name"]] = (
                VALID[f["name"]] if f["name"] in VALID and not isinstance(value, dict) else value
            )
        return out
    if kind == "array":
        return [sample(schema["items"], named)]
    if kind == "map":
        return {"k": sample(schema["values"], named)}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][0]
    return sample(kind, named)


# Fields that commands check when they are built: a sample inside each one's range.
VALID: dict[str, Any] = {
    "model": "flat",
    "tiers": [],
    "currency": "USD",
    "country": "GB",
    "email": "ada@example.com",
    "payment_token": "tok_visa",
    "percent_off_bp": None,
    "duration": "once",
    "periods": None,
    "interval": "month",
    "interval_count": 1,
    "apply_to": "new",
    "anchor_day": 7,
    "implied": [],
    "channel": "email",  # a message's, or a support note's
    "template": "welcome",
    "result": "sent",
    "lease_seconds": 60,
    "url": "https://crm.example.com/hooks",  # webhooks
    "event_types": [],
    "source_event": "Customer.Registered",
}


def sample_message(schema: dict[str, Any]) -> Any:
    """A sample whose event envelope names the event its schema is for."""
    datum = sample(schema)
    if schema["name"].startswith(f"{model.EVENTS_NS}."):
        defaults = {f["name"]: f.get("default") for f in schema["fields"]}
        datum["aggregate_type"], datum["type"] = defaults["aggregate_type"], defaults["type"]
    return datum


def framed(schema: dict[str, Any], datum: Any) -> bytes:
    out = io.BytesIO()
    out.write(b"\xc3\x01" + registry.fingerprint(schema))
    schemaless_writer(out, parse_schema(schema, named_schemas={}), datum)
    return out.getvalue()


@pytest.fixture(scope="module")
def commands() -> CommandCodec:
    return CommandCodec()


@pytest.fixture(scope="module")
def events() -> EventCodec:
    return EventCodec()


def test_contract_matches_the_domain_and_history() -> None:
    """Generated-from-classes == checked in; current == newest shipped; shipped unedited."""
    assert generate.problems() == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_class_has_a_schema_with_its_fields(name: str) -> None:
    path = registry.AVRO_DIR / f"{model.COMMANDS_NS}.{name}.avsc"
    assert path.exists(), f"command {name} has no schema: run python -m schemas.generate"
    fields = [f["name"] for f in registry.load_current(path.stem)["fields"]]
    assert fields == [f.name for f in dataclasses.fields(COMMANDS[name])]


@pytest.mark.parametrize("name", sorted(model.event_classes()))
def test_every_event_class_has_a_schema_with_its_fields(name: str) -> None:
    fullname = model.event_fullname(name)
    path = registry.AVRO_DIR / f"{fullname}.avsc"
    assert path.exists(), f"event {name} has no schema: run python -m schemas.generate"
    schema = registry.load_current(fullname)
    envelope = [f["name"] for f in schema["fields"]]
    assert envelope == [
        "event_id",
        "aggregate_type",
        "type",
        "aggregate_id",
        "version",
        "at",
        "meta",
        "data",
    ]
    data = [f["name"] for f in schema["fields"][-1]["type"]["fields"]]
    cls = model.event_classes()[name]
    assert data == [f.name for f in dataclasses.fields(cls) if f.name not in STANDARD]


def test_events_are_discovered_from_every_aggregate() -> None:
    found = set(model.event_classes())
    assert {
        "Plan.Defined",
        "Subscription.Renewed",
        "Customer.Erased",
        "CommandReceipt.Applied",
        "TaxRate.Changed",
    } <= found
    assert "Subscription.Event" not in found  # a base class, never emitted


def test_value_objects_serialise_to_their_dataclass_fields() -> None:
    """Pricing/Tier/Interval/Coupon/Line.to_dict() are what the common records describe."""
    from domain.invoicing import Coupon, Line
    from domain.periods import Interval
    from domain.pricing import Pricing, Tier

    at = datetime(2024, 1, 1, tzinfo=UTC)
    values = [
        Tier(None, 5),
        Pricing("tiered", 0, (Tier(None, 5),)),
        Interval("month", 3),
        Coupon("X", 1000),
        Line("recurring", "d", 10, at, at),
    ]
    for value in values:
        assert list(value.to_dict()) == [f.name for f in dataclasses.fields(value)]


@pytest.mark.parametrize("fullname", CURRENT)
def test_every_current_file_loads_with_plain_fastavro(fullname: str) -> None:
    schema = load_schema(str(registry.AVRO_DIR / f"{fullname}.avsc"))
    assert schema["name"] == fullname


def _fields(schema: Any, seen: set[str]) -> list[tuple[str, dict]]:
    """Every (record, field) pair reachable in an expanded schema."""
    out: list[tuple[str, dict]] = []
    if isinstance(schema, list):
        for branch in schema:
            out += _fields(branch, seen)
    elif isinstance(schema, dict):
        if schema.get("type") == "record" and schema["name"] not in seen:
            seen.add(schema["name"])
            for field in schema["fields"]:
                out.append((schema["name"], field))
                out += _fields(field["type"], seen)
        elif schema.get("type") in ("array", "map"):
            out += _fields(schema.get("items", schema.get("values")), seen)
    return out


@pytest.mark.parametrize("fullname", CURRENT)
def test_every_field_is_documented_and_conventional(fullname: str) -> None:
    schema = registry.load_current(fullname)
    assert schema.get("doc"), f"{fullname} has no doc"
    for record, field in _fields(schema, set()):
        where = f"{record}.{field['name']}"
        assert field.get("doc"), f"{where} has no doc"
        kind = field["type"]
        if isinstance(kind, list):
            assert "null" in kind and len(kind) == 2, where
            if kind[0] == "null":
                assert "default" in field and field["default"] is None, where
        if field["name"] in docs.MONEY:
            assert "minor units" in field["doc"], f"{where} is money: say minor units"
            assert "long" in json.dumps(kind), where
        if field["name"] in ("at", "period_start", "period_end", "anchor", "trial_end"):
            assert "timestamp-micros" in json.dumps(kind), where


def test_command_records_carry_the_envelope_first() -> None:
    envelope = [f.name for f in dataclasses.fields(Command)]
    assert envelope == ["command_id", "at", "actor", "source", "correlation_id", "implied"]
    for name in registry.current_names(prefix=f"{model.COMMANDS_NS}."):
        fields = registry.load_current(name)["fields"]
        assert [f["name"] for f in fields[:6]] == envelope, name


@pytest.mark.parametrize(("fullname", "number"), SHIPPED)
def test_every_shipped_version_still_decodes(
    fullname: str, number: int, commands: CommandCodec, events: EventCodec
) -> None:
    """Write a sample with each historical writer schema; the current codec reads it."""
    schema = dict(registry.history(fullname))[number]
    data = framed(schema, sample_message(schema))
    if fullname.startswith(f"{model.COMMANDS_NS}."):
        command = commands.decode(data)
        assert f"{model.COMMANDS_NS}.{type(command).__name__}" == fullname
    elif fullname.startswith(f"{model.EVENTS_NS}."):
        record = events.decode(data)
        assert isinstance(record, EventRecord)
        assert model.event_fullname(record.name) == fullname
        if "outcome" in record.data:  # JSON fields come back as Python values
            assert record.data["outcome"] == {"sample": [1, None]}
    else:  # common types are only ever read inside commands and events
        assert fullname.startswith(f"{model.COMMON_NS}.")


def test_shipped_fingerprints_are_recorded_for_every_version() -> None:
    prints = registry.read_fingerprints()
    assert set(prints) == set(registry.history_names())
    for fullname, number in SHIPPED:
        schema = dict(registry.history(fullname))[number]
        assert prints[fullname][f"v{number}"] == registry.fingerprint(schema).hex()


# ---- evolution, rehearsed in a copy of the schema folders -------------------------------


@pytest.fixture
def contract_copy(tmp_path: Path) -> tuple[Path, Path]:
    avro, hist = tmp_path / "avro", tmp_path / "history"
    shutil.copytree(registry.AVRO_DIR, avro)
    shutil.copytree(registry.HISTORY_DIR, hist)
    return avro, hist


def _with_new_data_field(field: dict[str, Any]) -> dict[str, dict]:
    schemas = model.all_schemas()
    paused = schemas[model.event_fullname("Subscription.Paused")]
    paused["fields"][-1]["type"]["fields"].append(field)
    return schemas


def test_shipping_v2_with_a_defaulted_field_keeps_v1_readable(
    contract_copy: tuple[Path, Path],
) -> None:
    avro, hist = contract_copy
    fullname = model.event_fullname("Subscription.Paused")
    v1 = dict(registry.history(fullname, hist))[1]
    old = framed(v1, sample_message(v1))
    field = {"name": "note", "type": "string", "default": "", "doc": "A new field."}
    changed = generate.write(avro, hist, _with_new_data_field(field))
    assert str(hist / fullname / "v2.avsc") in changed
    assert (hist / fullname / "v1.avsc").read_text() == (
        registry.HISTORY_DIR / fullname / "v1.avsc"
    ).read_text()  # v1 untouched
    codec = EventCodec(avro, hist)
    record = codec.decode(old)
    assert record.data["note"] == ""  # the reader's default fills what v1 never wrote
    new = EventRecord(**{**dataclasses.asdict(record), "data": {**record.data, "note": "x"}})
    assert codec.decode(codec.encode(new)) == new
    assert codec.fingerprint("Subscription.Paused") != registry.fingerprint(v1)


def test_a_new_field_without_default_cannot_read_old_messages(
    contract_copy: tuple[Path, Path],
) -> None:
    avro, hist = contract_copy
    fullname = model.event_fullname("Subscription.Paused")
    v1 = dict(registry.history(fullname, hist))[1]
    old = framed(v1, sample_message(v1))
    generate.write(
        avro,
        hist,
        _with_new_data_field({"name": "note", "type": "string", "doc": "No default: breaks v1."}),
    )
    with pytest.raises(DecodeError, match="does not decode"):
        EventCodec(avro, hist).decode(old)


def test_the_readme_lists_every_command_and_event() -> None:
    readme = (registry.HERE / "README.md").read_text()
    for name in [*COMMANDS, *model.event_classes()]:
        assert f"`{name}`" in readme, f"schemas/README.md does not mention {name}"
