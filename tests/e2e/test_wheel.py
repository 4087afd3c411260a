"""What ships is what users get: the built wheel, installed (not editable) in a fresh venv.

The wheel is built from the checkout and installed with `--no-deps` into a new venv whose
only other path is the dev venv's site-packages (the dependencies; the checkout itself is
not on the path): the CLI must then run from the wheel's own files alone — its packages,
the Avro schemas, everything a user's `pip install subledger` gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from domain.notifications import KINDS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(work / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("subledger-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cli.py" in names and "bootstrap.py" in names
    assert any(n.startswith("schemas/avro/") and n.endswith(".avsc") for n in names)
    assert any(n.startswith("schemas/history/") for n in names)
    # every message's default template ships as package data
    assert {n for n in names if n.startswith("consumers/templates/") and n.endswith(".txt")} == {
        f"consumers/templates/{t}.txt" for t in KINDS
    }
    for package in ("domain/ledger/handlers/", "domain/subscription/", "adapters/", "verbs/"):
        assert any(n.startswith(package) for n in names), package
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "subledger-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(venv / "bin" / "subledger"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_installed_wheel_runs_from_its_own_files(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import cli, schemas; print(cli.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(installed) in where and str(ROOT) not in where
    assert run(installed, tmp_path, "--help").returncode == 0
    book = tmp_path / "book"
    proc = run(installed, tmp_path, "--data-dir", str(book), "simulate", "--customers", "8",
               "--months", "2", "--seed", "3", "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["events"] > 0
    listed = run(
        installed, tmp_path, "--data-dir", str(book), "invoices", "list", "--format", "json"
    )
    invoices = json.loads(listed.stdout)
    assert invoices and all(i["number"].startswith("INV-") for i in invoices)
    from_schemas = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "from schemas.codec import CommandCodec; print(len(CommandCodec().current_schemas()))"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert int(from_schemas) >= 16  # every command's schema, read from the installed files
    # the dashboard's template, stylesheet and script ship too: an export from the wheel
    board = tmp_path / "board"
    exported = run(
        installed, tmp_path, "--data-dir", str(book), "dashboard", "--export", str(board)
    )
    assert exported.returncode == 0, exported.stderr
    page = (board / "index.html").read_text()
    css = (ROOT / "dashboard" / "static" / "dashboard.css").read_text()
    assert css.strip().splitlines()[0] in page  # the stylesheet, inlined from the wheel
    pages = sorted(p.name for p in board.glob("*.html"))
    assert len(pages) > 1 and all("Plotly" in (board / p).read_text() for p in pages[:2]), pages
