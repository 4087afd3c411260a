"""Avro codecs for the ledger's commands and events, in bytewax's serde style.

Wire format of every message on `subledger.commands` and `subledger.events`: Avro
single-object encoding,

    C3 01 | CRC-64-AVRO fingerprint of the writer schema (8 bytes, little-endian) | body

where body is the Avro binary encoding of the record under that writer schema. The
fingerprint lets a reader find the exact schema a message was written with (current or
any shipped historical version) and resolve it against the current reader schema, so old
messages stay readable as the contract evolves. Schemas are parsed once, in `__init__`;
`None` is refused both ways (a Kafka tombstone is not a message of this contract).
Decoding failures raise `DecodeError` with a machine `code`, so the command consumer can
put the reason on the rejected topic.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from schemas import registry
from schemas.keys import command_key, event_key
from schemas.model import COMMANDS_NS, EVENTS_NS
from schemas.records import EventRecord

__all__ = [
    "CommandCodec",
    "DecodeError",
    "EncodeError",
    "EventCodec",
    "command_key",
    "event_key",
]


EXEMPT_FROM_CARD_RULE = frozenset({"command_id", "correlation_id"})
"""Fields never masked nor refused as card numbers: machine ids, often numeric, pass the
Luhn check one time in ten, and a masked id could no longer be matched to its command."""


class DecodeError(ValueError):
    """Bytes that are not a valid message of this contract.

    `code` is stable for machines: `bad_header`, `unknown_schema`, `undecodable`,
    `unknown_command`, or the domain error's code (e.g. `invalid_input`) when the decoded
    command breaks its own validation.
    """

    def __init__(
        self,
        reason: str,
        code: str = "undecodable",
        command_id: str | None = None,
        command: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.command_id = command_id  # when the Avro decoded but the command refused it
        self.command = command

    def __reduce__(self) -> tuple[type[DecodeError], tuple[Any, ...]]:
        # keep `code` and the command's id across processes
        return (type(self), (self.reason, self.code, self.command_id, self.command))


class EncodeError(ValueError):
    """A value that does not fit its schema (wrong type, missing or extra field)."""


def _plain(value: Any) -> Any:
    """Tuples as lists: fastavro would otherwise read a 2-tuple as union notation."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _SingleObjectCodec:
    """What both codecs share: the writer schemas by fingerprint and the framing."""

    namespace = ""

    def __init__(
        self,
        avro_dir: Path = registry.AVRO_DIR,
        history_dir: Path = registry.HISTORY_DIR,
        *,
        check_types: bool = True,
    ) -> None:
        """`check_types` validates every value's type before writing (fastavro would
        otherwise write 1.5 or True into a long as 1); it costs ~100 µs per message."""
        self._check_types = check_types
        current, writers = registry.writers(f"{self.namespace}.", avro_dir, history_dir)
        if not current:
            raise FileNotFoundError(f"no {self.namespace} schemas under {avro_dir}")
        self._schemas = current
        self._readers = {n: parse_schema(s, named_schemas={}) for n, s in current.items()}
        self._current_fp = {n: registry.fingerprint(s) for n, s in current.items()}
        self._writers = {
            fp: (w, parse_schema(w.schema, named_schemas={})) for fp, w in writers.items()
        }

    def _fullname(self, name: str) -> str:
        return (
            name
            if name.startswith(f"{self.namespace}.")
            else (f"{self.namespace}.{name.replace('.', '')}")
        )

    def fingerprint(self, name: str) -> bytes:
        """The 8-byte fingerprint of the current schema of `name` (short or full name)."""
        return self._current_fp[self._fullname(name)]

    def writer_schemas(self) -> dict[bytes, dict[str, Any]]:
        """Every schema this codec reads, current and historical, by fingerprint."""
        return {fp: w.schema for fp, (w, _parsed) in self._writers.items()}

    def current_schemas(self) -> dict[str, dict[str, Any]]:
        """The current (reader) schema of every record, by full name."""
        return dict(self._schemas)

    def _write(self, fullname: str, datum: dict[str, Any]) -> bytes:
        parsed = self._readers.get(fullname)
        if parsed is None:
            raise EncodeError(f"no schema {fullname} in the contract")
        try:
            if self._check_types:
                validate(datum, parsed, raise_errors=True, strict=True)
            out = io.BytesIO()
            out.write(registry.header(self._current_fp[fullname]))
            schemaless_writer(
                out, parsed, datum, strict_allow_default=True, disable_tuple_notation=True
            )
        except (ValidationError, ValueError, TypeError, AttributeError) as exc:
            raise EncodeError(f"{fullname}: {exc}") from exc
        return out.getvalue()

    def _read(self, data: bytes | bytearray | memoryview | None) -> tuple[str, dict[str, Any]]:
        if data is None:
            raise DecodeError("no bytes (None): a tombstone is not a message", "bad_header")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"expected bytes, got {type(data).__name__}", "bad_header")
        data = bytes(data)
        fp, writer, parsed_writer = self._frame(data)
        reader = None if fp == self._current_fp[writer.fullname] else self._readers[writer.fullname]
        return writer.fullname, self._body(data, fp, writer, parsed_writer, reader)

    def _read_as_written(self, data: bytes) -> tuple[bytes, Any, dict[str, Any]]:
        """(fingerprint, parsed writer schema, datum) with no resolution to the current
        schema: what it takes to write the same message back under the same schema."""
        fp, writer, parsed_writer = self._frame(data)
        return fp, parsed_writer, self._body(data, fp, writer, parsed_writer, None)

    def _frame(self, data: bytes) -> tuple[bytes, Any, Any]:
        """The header's fingerprint and the shipped writer schema it names (as parsed)."""
        if len(data) < registry.HEADER_SIZE:
            raise DecodeError(
                f"{len(data)} bytes is too short for Avro single-object encoding (10-byte header)",
                "bad_header",
            )
        if data[:2] != registry.MAGIC:
            raise DecodeError(
                f"bad magic {data[:2].hex()}: expected c301 (Avro single-object encoding)",
                "bad_header",
            )
        fp = data[2 : registry.HEADER_SIZE]
        found = self._writers.get(fp)
        if found is None:
            raise DecodeError(
                f"unknown writer schema fingerprint {fp.hex()}: not a shipped "
                f"{self.namespace} schema",
                "unknown_schema",
            )
        writer, parsed_writer = found
        return fp, writer, parsed_writer

    def _body(
        self, data: bytes, fp: bytes, writer: Any, parsed_writer: Any, reader: Any
    ) -> dict[str, Any]:
        body = io.BytesIO(data[registry.HEADER_SIZE :])
        what = f"{writer.fullname} (writer {writer.version or 'current'}, {fp.hex()})"
        try:
            datum = schemaless_reader(body, parsed_writer, reader)
        except Exception as exc:
            raise DecodeError(
                f"body does not decode as {what}: {type(exc).__name__}: {exc}"
            ) from exc
        rest = len(data) - registry.HEADER_SIZE - body.tell()
        if rest:
            raise DecodeError(f"{rest} trailing bytes after a {what} body")
        return datum  # type: ignore[return-value]


class CommandCodec(_SingleObjectCodec):
    """Commands <-> Avro single-object bytes (`subledger.commands.<ClassName>` schemas).

    Decoding resolves the writer's schema (any shipped version) against the current one
    and builds the command dataclass, so its own validation runs.
    """

    namespace = COMMANDS_NS

    def __init__(
        self,
        avro_dir: Path = registry.AVRO_DIR,
        history_dir: Path = registry.HISTORY_DIR,
        *,
        check_types: bool = True,
    ) -> None:
        super().__init__(avro_dir, history_dir, check_types=check_types)
        from domain.commands import COMMANDS

        self._classes = {f"{COMMANDS_NS}.{n}": cls for n, cls in COMMANDS.items()}
        self._tuples = {
            name: [f for f, hint in get_type_hints(cls).items() if get_origin(hint) is tuple]
            for name, cls in self._classes.items()
        }

    def redact(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bool]:
        """The message with every card number masked (last four digits kept), and whether
        anything was: what may go to the rejected topic, which must never carry one.

        A message that decodes as Avro under any shipped writer schema is masked string by
        string (map keys too) and written back under the same schema and fingerprint, so it
        still decodes; `command_id` and `correlation_id` are exempt (numeric ids pass the
        Luhn check one time in ten). Judged at the Avro level, not the command's: a datum
        its own dataclass refuses is still masked and still decodes. Other bytes are masked
        in place, their length kept.
        """
        from domain.pci import mask_card_numbers_in_bytes, mask_value

        raw = bytes(data)
        try:
            fp, parsed, datum = self._read_as_written(raw)
        except DecodeError:
            return mask_card_numbers_in_bytes(raw)
        masked = mask_value(datum, EXEMPT_FROM_CARD_RULE)
        if masked == datum:
            return raw, False
        out = io.BytesIO()
        out.write(registry.header(fp))
        try:
            schemaless_writer(out, parsed, masked, disable_tuple_notation=True)
        except (ValueError, TypeError, AttributeError):  # a masked value its schema refuses
            return mask_card_numbers_in_bytes(raw)[0], True
        return out.getvalue(), True

    def encode(self, command: Any) -> bytes:
        if command is None:
            raise TypeError("CommandCodec.encode(None): there is no command to encode")
        datum = {f.name: _plain(getattr(command, f.name)) for f in dataclasses.fields(command)}
        return self._write(f"{COMMANDS_NS}.{type(command).__name__}", datum)

    def decode(self, data: bytes | None) -> Any:
        from domain.errors import LedgerError

        fullname, datum = self._read(data)
        cls = self._classes.get(fullname)
        if cls is None:
            raise DecodeError(f"{fullname} is no command this ledger knows", "unknown_command")
        for name in self._tuples[fullname]:
            if name in datum:
                datum[name] = tuple(datum[name])
        try:
            return cls(**datum)
        except LedgerError as exc:  # its id still names it, so a waiting sender hears of it
            command_id = datum.get("command_id")
            raise DecodeError(
                f"{fullname}: {exc}",
                exc.code,
                command_id if isinstance(command_id, str) and command_id else None,
                cls.__name__,
            ) from exc
        except TypeError as exc:
            raise DecodeError(f"{fullname} does not fit {cls.__name__}: {exc}") from exc


class EventCodec(_SingleObjectCodec):
    """EventRecords <-> Avro single-object bytes (`subledger.events.<Aggregate><Event>`).

    Record layout: the envelope (event_id, aggregate_type, type, aggregate_id, version, at,
    meta) then the event's own fields nested in `data`, exactly as in EventRecord, so
    `decode(encode(r)) == r` (position is not carried: it is the reader's, e.g. an offset).
    Needs no domain import: consumers can use it with the schema files alone.
    """

    namespace = EVENTS_NS

    def __init__(
        self,
        avro_dir: Path = registry.AVRO_DIR,
        history_dir: Path = registry.HISTORY_DIR,
        *,
        check_types: bool = True,
    ) -> None:
        super().__init__(avro_dir, history_dir, check_types=check_types)
        meta = registry.load_current("subledger.common.Metadata", avro_dir)
        self._meta_keys = [f["name"] for f in meta["fields"] if f["name"] != "extra"]
        self._json = {name: _json_fields(schema) for name, schema in self._schemas.items()}

    def encode(self, record: EventRecord) -> bytes:
        if record is None:
            raise TypeError("EventCodec.encode(None): there is no event to encode")
        fullname = f"{EVENTS_NS}.{record.aggregate_type}{record.type}"
        data = _plain(dict(record.data))
        try:
            for name in self._json.get(fullname, ()):
                data[name] = json.dumps(data[name], ensure_ascii=False, separators=(",", ":"))
        except (KeyError, TypeError, ValueError) as exc:
            raise EncodeError(f"{fullname}: field {exc} is not JSON-able") from exc
        meta: dict[str, Any] = {k: record.meta.get(k) for k in self._meta_keys}
        meta["extra"] = {k: v for k, v in record.meta.items() if k not in self._meta_keys}
        datum = {
            "event_id": record.event_id,
            "aggregate_type": record.aggregate_type,
            "type": record.type,
            "aggregate_id": record.aggregate_id,
            "version": record.version,
            "at": record.at,
            "meta": meta,
            "data": data,
        }
        return self._write(fullname, datum)

    def decode(self, data: bytes | None, position: int | None = None) -> EventRecord:
        """The event a message holds; `position`, its place in the ledger's log, if known
        (the relay's header says it)."""
        fullname, datum = self._read(data)
        named = f"{EVENTS_NS}.{datum['aggregate_type']}{datum['type']}"
        if named != fullname:
            raise DecodeError(f"a {fullname} message says it is {named}")
        own = datum["data"]
        try:
            for name in self._json.get(fullname, ()):
                own[name] = json.loads(own[name])
        except (KeyError, ValueError) as exc:
            raise DecodeError(f"{fullname}: field {exc} holds no valid JSON") from exc
        extra = datum["meta"].pop("extra", None) or {}
        meta = {k: v for k, v in datum["meta"].items() if v is not None}
        return EventRecord(
            event_id=datum["event_id"],
            aggregate_type=datum["aggregate_type"],
            type=datum["type"],
            aggregate_id=str(datum["aggregate_id"]),
            version=datum["version"],
            at=datum["at"],
            meta={**meta, **extra},
            data=own,
            position=position,
        )


def _json_fields(schema: dict[str, Any]) -> list[str]:
    """Fields of `data` whose type is a string holding JSON (logicalType json)."""
    data = next((f["type"] for f in schema["fields"] if f["name"] == "data"), None)
    if not isinstance(data, dict) or data.get("type") != "record":
        return []
    return [
        f["name"]
        for f in data["fields"]
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "json"
    ]
