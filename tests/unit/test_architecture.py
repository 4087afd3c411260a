"""The layers stay layered: the domain is pure, bootstrap.py is the only composition root
(nothing below it imports it, nor the CLI), bench/ needs no tests/, and no module outgrows
what one reader can hold (500 lines). Read from the source with `ast`, every import counted,
also those inside functions."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".services", ".subledger", "build", "dist", "__pycache__", "tests"}
MAX_LINES = 500
BELOW_BOOTSTRAP = ("domain", "schemas", "projections", "consumers", "adapters")
ENTRY_POINTS = {"bootstrap", "cli", "verbs"}
OUTER_LAYERS = {"consumers", "projections", "schemas", "adapters", "bootstrap", "cli", "verbs"}


def python_files(*folders: str) -> list[Path]:
    """The project's .py files (under `folders`, or all of them outside tests/)."""
    if folders:
        return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))
    return sorted(p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # `from domain import commands` names a module too
                yield node.lineno, f"{name}.{alias.name}"


def top(name: str) -> str:
    return name.split(".", 1)[0]


def where(path: Path, line: int, name: str) -> str:
    return f"{path.relative_to(ROOT)}:{line} imports {name}"


def test_domain_imports_only_the_standard_library_eventsourcing_and_itself() -> None:
    allowed = set(sys.stdlib_module_names) | {"eventsourcing", "domain", "__future__"}
    found = [
        where(path, line, name)
        for path in python_files("domain")
        for line, name in imports(path)
        if top(name) not in allowed and not top(name).startswith("_")
    ]
    assert found == []


def test_domain_imports_nothing_from_the_outer_layers() -> None:
    found = [
        where(path, line, name)
        for path in python_files("domain")
        for line, name in imports(path)
        if top(name) in OUTER_LAYERS
    ]
    assert found == []


@pytest.mark.parametrize("folder", BELOW_BOOTSTRAP)
def test_nothing_below_bootstrap_imports_it_or_the_cli(folder: str) -> None:
    found = [
        where(path, line, name)
        for path in python_files(folder)
        for line, name in imports(path)
        if top(name) in ENTRY_POINTS
    ]
    assert found == []


def test_bench_imports_the_project_not_the_tests() -> None:
    found = [
        where(path, line, name)
        for path in python_files("bench")
        for line, name in imports(path)
        if top(name) in {"tests", "pipeline_support", "ledger_support", "conftest"}
    ]
    found += [
        f"{path.relative_to(ROOT)} edits sys.path"
        for path in python_files("bench")
        if "sys.path" in path.read_text()
    ]
    assert found == []


def test_no_python_file_outside_tests_is_longer_than_500_lines() -> None:
    files = python_files()
    assert ROOT / "bootstrap.py" in files and ROOT / "domain" / "__init__.py" in files
    long = {
        str(path.relative_to(ROOT)): n
        for path in files
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_checks_see_imports_inside_functions_and_relative_ones() -> None:
    """The walker itself: a hidden function-level or relative import must not slip by."""
    source = "def later():\n    from bootstrap import Runtime\n    from . import kafka\n"
    source += "    import cli\n    from ..verbs.render import table\n"
    found = [name for _line, name in imports_in(source, "consumers.probe")]
    assert found == [
        "bootstrap",
        "bootstrap.Runtime",
        "consumers",
        "consumers.kafka",
        "cli",
        "verbs.render",
        "verbs.render.table",
    ]
    assert {top(name) for name in found} & ENTRY_POINTS == {"bootstrap", "cli", "verbs"}
