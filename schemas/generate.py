"""Regenerate the `.avsc` files from the domain classes, and ship new versions into history.

    python -m schemas.generate           # write schemas/avro and any new history versions
    python -m schemas.generate --check   # exit 1, listing problems, if anything drifted

Why a generator: the schemas must say exactly what the classes carry; writing them by
hand drifts. Why checked-in files anyway: what ships is a reviewed artefact, and history
is never regenerated: a version once in `schemas/history/` is never edited (the
fingerprints file catches edits). A change of the canonical form becomes v<N+1>; delete an
unreleased v<N+1> yourself if you iterate before a release.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from schemas import registry
from schemas.model import all_schemas


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _check_resolvable(schema: dict[str, Any]) -> None:
    parse_schema(schema, named_schemas={})  # raises on an invalid schema or default


def write(
    avro_dir: Path = registry.AVRO_DIR,
    history_dir: Path = registry.HISTORY_DIR,
    schemas: dict[str, dict] | None = None,
) -> list[str]:
    """Write current files and new history versions; returns what changed."""
    schemas = all_schemas() if schemas is None else schemas
    changed: list[str] = []
    avro_dir.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        path = avro_dir / f"{name}.avsc"
        text = dumps(schema)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(str(path))
    prints = registry.read_fingerprints(history_dir)
    for name in schemas:
        expanded = registry.load_current(name, avro_dir)
        _check_resolvable(expanded)
        versions = registry.history(name, history_dir)
        if versions and registry.canonical(versions[-1][1]) == registry.canonical(expanded):
            continue
        number = versions[-1][0] + 1 if versions else 1
        path = history_dir / name / f"v{number}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(expanded))
        prints.setdefault(name, {})[f"v{number}"] = registry.fingerprint(expanded).hex()
        changed.append(str(path))
    history_dir.mkdir(parents=True, exist_ok=True)
    (history_dir / registry.FINGERPRINTS).write_text(
        json.dumps(dict(sorted(prints.items())), indent=2) + "\n"
    )
    return changed


def problems(
    avro_dir: Path = registry.AVRO_DIR, history_dir: Path = registry.HISTORY_DIR
) -> list[str]:
    """Everything that would make the shipped contract disagree with the code or itself."""
    found: list[str] = []
    schemas = all_schemas()
    for name, schema in schemas.items():
        path = avro_dir / f"{name}.avsc"
        if not path.exists():
            found.append(f"{name}: no schema file {path.name} (run python -m schemas.generate)")
        elif json.loads(path.read_text()) != schema:
            found.append(
                f"{name}: {path.name} differs from the domain class "
                "(run python -m schemas.generate)"
            )
    prints = registry.read_fingerprints(history_dir)
    for name in registry.current_names(avro_dir):
        versions = registry.history(name, history_dir)
        if not versions:
            found.append(f"{name}: never shipped (no schemas/history/{name}/v1.avsc)")
        elif registry.canonical(versions[-1][1]) != registry.canonical(
            registry.load_current(name, avro_dir)
        ):
            found.append(f"{name}: current schema is not its newest shipped version")
    for name in registry.history_names(history_dir):
        for number, schema in registry.history(name, history_dir):
            want = prints.get(name, {}).get(f"v{number}")
            if want != registry.fingerprint(schema).hex():
                found.append(
                    f"{name} v{number}: shipped file edited or unrecorded "
                    f"(fingerprint {registry.fingerprint(schema).hex()}, "
                    f"recorded {want})"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        found = problems()
        for line in found:
            print(line)
        return 1 if found else 0
    for line in write():
        print("wrote", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
