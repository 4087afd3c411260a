"""Avro schemas derived from the domain's classes, so the contract follows the code.

What ships are the checked-in `.avsc` files; this module is how they are (re)generated
(`python -m schemas.generate`) and how the drift test knows what they ought to say.
Reading the classes rather than hand-writing schemas means a field added to an event is
noticed by a failing test, not by a consumer in production.

Mapping (Python annotation -> Avro): str -> string, int -> long, bool -> boolean,
datetime -> long/timestamp-micros, `T | None` -> ["null", T] default null, list/tuple ->
array, dict[str, str] -> map<string>, the domain's value classes (Pricing, Tier, Interval,
Coupon, invoice Line) -> named records in `subledger.common`. Free-form `dict[str, Any]`
fields are mapped by name (DICT_FIELDS, JSON_FIELDS); an unknown one is an error.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
from datetime import UTC, datetime
from typing import Any, Union, get_args, get_origin, get_type_hints

from schemas import docs
from schemas.records import STANDARD

COMMANDS_NS = "subledger.commands"
EVENTS_NS = "subledger.events"
COMMON_NS = "subledger.common"

TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}
UUID_STRING = {"type": "string", "logicalType": "uuid"}
# A string holding a JSON document; EventCodec turns it back into the Python value.
JSON_STRING = {"type": "string", "logicalType": "json"}

# dict[str, Any] fields of commands and events, by name: the value class whose
# `to_dict()` form they hold.
DICT_FIELDS = {"pricing": "Pricing", "interval": "Interval", "coupon": "Coupon", "terms": "Coupon"}
LIST_OF_DICT_FIELDS = {"lines": "InvoiceLine"}
JSON_FIELDS = frozenset({"outcome"})


class UnmappedType(TypeError):
    """A domain field whose Python type has no Avro mapping yet: extend this module."""


def value_classes() -> dict[str, type]:
    """The domain's value objects that events carry in their `to_dict()` form."""
    from domain.invoicing import Coupon, Line
    from domain.periods import Interval
    from domain.pricing import Pricing, Tier

    return {
        "Tier": Tier,
        "Pricing": Pricing,
        "Interval": Interval,
        "Coupon": Coupon,
        "InvoiceLine": Line,
    }


def command_classes() -> dict[str, type]:
    from domain.commands import COMMANDS

    return dict(COMMANDS)


def aggregate_classes() -> list[type]:
    """Every LedgerAggregate subclass defined in any module of the `domain` package and its
    subpackages (each found once, in the module that defines it)."""
    import domain
    from domain.base import LedgerAggregate

    found: list[type] = []
    infos = pkgutil.walk_packages(domain.__path__, prefix="domain.")
    for info in sorted(infos, key=lambda m: m.name):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, LedgerAggregate)
                and obj is not LedgerAggregate
                and obj.__module__ == module.__name__
            ):
                found.append(obj)
    return found


def event_classes() -> dict[str, type]:
    """`{"Subscription.Renewed": cls}` for every concrete event an aggregate declares."""
    from eventsourcing.domain import Aggregate

    events: dict[str, type] = {}
    for agg in aggregate_classes():
        nested = [
            v
            for k, v in vars(agg).items()
            if isinstance(v, type)
            and issubclass(v, Aggregate.Event)
            and k not in ("Event", "Created")
        ]
        for cls in nested:
            if not any(o is not cls and issubclass(o, cls) for o in nested):  # skip bases
                events[cls.__qualname__] = cls
    return dict(sorted(events.items()))


def event_fullname(event_name: str) -> str:
    """`Subscription.Renewed` -> `subledger.events.SubscriptionRenewed`."""
    return f"{EVENTS_NS}.{event_name.replace('.', '')}"


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_default(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_default(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | bool):
        return value
    raise UnmappedType(f"default {value!r} has no Avro form")


def avro_type(hint: Any, name: str, owner: str) -> Any:
    """The Avro type of field `name` of `owner`, annotated `hint`."""
    origin, args = get_origin(hint), get_args(hint)
    commons = {cls: n for n, cls in value_classes().items()}
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise UnmappedType(f"{owner}.{name}: only `T | None` unions map to Avro: {hint!r}")
        return ["null", avro_type(rest[0], name, owner)]
    simple = {bool: "boolean", int: "long", str: "string"}
    if hint in simple:
        return simple[hint]
    if hint is datetime:
        return dict(TIMESTAMP)
    if hint in commons:
        return f"{COMMON_NS}.{commons[hint]}"
    if origin in (list, tuple):
        if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            raise UnmappedType(f"{owner}.{name}: only tuple[T, ...] maps to Avro: {hint!r}")
        item = args[0] if args else Any
        if item is dict or get_origin(item) is dict:
            if name not in LIST_OF_DICT_FIELDS:
                raise UnmappedType(f"{owner}.{name}: list of dicts not in LIST_OF_DICT_FIELDS")
            return {"type": "array", "items": f"{COMMON_NS}.{LIST_OF_DICT_FIELDS[name]}"}
        return {"type": "array", "items": avro_type(item, name, owner)}
    if origin is dict and args and args[0] is str:
        if args[1] is str:
            return {"type": "map", "values": "string"}
        if name in JSON_FIELDS:
            return dict(JSON_STRING)
        if name in DICT_FIELDS:
            return f"{COMMON_NS}.{DICT_FIELDS[name]}"
    raise UnmappedType(f"{owner}.{name}: no Avro mapping for {hint!r}; extend schemas/model.py")


def avro_field(owner: str, name: str, hint: Any, default: Any = dataclasses.MISSING) -> dict:
    """One field with its doc; optional fields default to null, Python defaults carry over."""
    kind = avro_type(hint, name, owner)
    field: dict[str, Any] = {"name": name, "type": kind}
    if isinstance(kind, list):
        if default is dataclasses.MISSING or default is None:
            field["default"] = None
        else:  # Avro: a union's default must match its first branch
            field["type"] = [kind[1], "null"]
            field["default"] = _json_default(default)
    elif default is not dataclasses.MISSING:
        field["default"] = _json_default(default)
    field["doc"] = docs.field_doc(owner, name)
    return field


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def dataclass_fields(cls: type, owner: str, skip: tuple[str, ...] = ()) -> list[dict]:
    hints = get_type_hints(cls)
    return [
        avro_field(owner, f.name, hints[f.name], _default(f))
        for f in dataclasses.fields(cls)
        if f.name not in skip
    ]


def _record(name: str, namespace: str, doc: str, fields: list[dict]) -> dict:
    return {"type": "record", "name": name, "namespace": namespace, "doc": doc, "fields": fields}


def metadata_schema() -> dict:
    """Event metadata: the keys `Command.meta()` writes, each optional, plus `extra`."""
    from domain.commands import Command

    keys = Command(command_id="x", at=datetime(2000, 1, 1, tzinfo=UTC)).meta()
    fields = [avro_field("Metadata", key, str | None) for key in keys]
    fields.append(avro_field("Metadata", "extra", dict[str, str], {}))
    return _record("Metadata", COMMON_NS, docs.record_doc("Metadata"), fields)


def common_schemas() -> dict[str, dict]:
    out = {f"{COMMON_NS}.Metadata": metadata_schema()}
    for name, cls in value_classes().items():
        fields = dataclass_fields(cls, name)
        out[f"{COMMON_NS}.{name}"] = _record(name, COMMON_NS, docs.record_doc(name), fields)
    return out


def command_schema(cls: type) -> dict:
    name = cls.__name__
    return _record(name, COMMANDS_NS, docs.record_doc(name), dataclass_fields(cls, name))


def event_schema(event_name: str, cls: type) -> dict:
    """Envelope (mirrors EventRecord) with the event's own fields nested under `data`."""
    name = event_name.replace(".", "")
    data = _record(
        f"{name}Data",
        EVENTS_NS,
        f"The own fields of {event_name}.",
        dataclass_fields(cls, event_name, STANDARD),
    )
    envelope = [
        ("event_id", "string"),
        ("aggregate_type", "string"),
        ("type", "string"),
        ("aggregate_id", dict(UUID_STRING)),
        ("version", "long"),
        ("at", dict(TIMESTAMP)),
        ("meta", f"{COMMON_NS}.Metadata"),
        ("data", data),
    ]
    fields = [{"name": n, "type": t, "doc": docs.field_doc("Event", n)} for n, t in envelope]
    aggregate_type, _, type_name = event_name.partition(".")
    fields[1]["default"], fields[2]["default"] = aggregate_type, type_name  # self-describing
    return _record(name, EVENTS_NS, docs.record_doc(event_name), fields)


def all_schemas() -> dict[str, dict]:
    """Every schema the classes imply, by full name: common types, commands, events."""
    out = common_schemas()
    for name, cls in command_classes().items():
        out[f"{COMMANDS_NS}.{name}"] = command_schema(cls)
    for event_name, cls in event_classes().items():
        out[event_fullname(event_name)] = event_schema(event_name, cls)
    return out
