"""The shipped schemas on disk: current versions, every historical version, fingerprints.

Layout (the contract upstream teams read):
- `schemas/avro/<fullname>.avsc`: the current version of each named schema; commands and
  events refer to `subledger.common.*` types by name, which `fastavro.schema.load_schema`
  resolves from sibling files.
- `schemas/history/<fullname>/v<N>.avsc`: every version ever shipped, fully expanded (named
  types inlined) so each file stands alone and never changes when a common type evolves.
- `schemas/history/fingerprints.json`: `{fullname: {"v1": hex}}`, the CRC-64-AVRO
  fingerprint of each shipped version; the tests fail if a shipped file is edited.

A fingerprint here is the 8 bytes the single-object encoding carries (little-endian, as
fastavro's `fingerprint()` hex already is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import load_schema, to_parsing_canonical_form

HERE = Path(__file__).resolve().parent
AVRO_DIR = HERE / "avro"
HISTORY_DIR = HERE / "history"
FINGERPRINTS = "fingerprints.json"
MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


def canonical(schema: dict[str, Any]) -> str:
    """Avro's Parsing Canonical Form (docs, defaults and logical types stripped)."""
    return to_parsing_canonical_form(schema)


def fingerprint(schema: dict[str, Any]) -> bytes:
    """CRC-64-AVRO of the canonical form: the 8 bytes after the single-object magic."""
    return bytes.fromhex(_fingerprint(canonical(schema), "CRC-64-AVRO"))


def header(fp: bytes) -> bytes:
    return MAGIC + fp


def load_current(fullname: str, avro_dir: Path = AVRO_DIR) -> dict[str, Any]:
    """The current version, fully expanded, as a plain (unparsed) schema dict."""
    schema: Any = load_schema(str(avro_dir / f"{fullname}.avsc"), _write_hint=False)
    return schema


def current_names(avro_dir: Path = AVRO_DIR, prefix: str = "") -> list[str]:
    return sorted(p.stem for p in avro_dir.glob(f"{prefix}*.avsc"))


def history_names(history_dir: Path = HISTORY_DIR, prefix: str = "") -> list[str]:
    return sorted(p.name for p in history_dir.glob(f"{prefix}*") if p.is_dir())


def history(fullname: str, history_dir: Path = HISTORY_DIR) -> list[tuple[int, dict[str, Any]]]:
    """Every shipped version of `fullname`, oldest first, as `(N, schema)`."""
    versions = []
    for path in (history_dir / fullname).glob("v*.avsc"):
        if path.stem[1:].isdigit():
            versions.append((int(path.stem[1:]), json.loads(path.read_text())))
    return sorted(versions, key=lambda v: v[0])


def read_fingerprints(history_dir: Path = HISTORY_DIR) -> dict[str, dict[str, str]]:
    path = history_dir / FINGERPRINTS
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass(frozen=True)
class Writer:
    """One schema version a codec can read: where it came from and its fingerprint."""

    fullname: str
    version: int | None  # None: the current file, not (yet) in history
    schema: dict[str, Any]
    fingerprint: bytes


def writers(
    prefix: str, avro_dir: Path = AVRO_DIR, history_dir: Path = HISTORY_DIR
) -> tuple[dict[str, dict], dict[bytes, Writer]]:
    """(current schema by fullname, every readable writer by fingerprint) under `prefix`.

    A name with history but no current file (a retired event type) is read with its newest
    shipped version as the reader, so old events of it still decode.
    """
    current = {name: load_current(name, avro_dir) for name in current_names(avro_dir, prefix)}
    by_fp: dict[bytes, Writer] = {}
    for name in history_names(history_dir, prefix):
        versions = history(name, history_dir)
        for number, schema in versions:
            by_fp[fingerprint(schema)] = Writer(name, number, schema, fingerprint(schema))
        if name not in current and versions:
            current[name] = versions[-1][1]
    for name, schema in current.items():
        fp = fingerprint(schema)
        by_fp.setdefault(fp, Writer(name, None, schema, fp))
    return current, by_fp
