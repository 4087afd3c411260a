"""The fault suite's own PostgreSQL and Kafka: `ops/services` in a services dir and on ports
of their own, so that killing them never disturbs the rest of the suite (or a parallel test
worker). Started once per session that runs a fault test, stopped and deleted after it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops" / "services"
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # pipeline_support


def _free_ports(n: int) -> list[int]:
    """n ports nothing listens on now (the OS's ephemeral picks, released at once)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class OwnServices:
    """ops/services with its own state dir and ports; `up`, `kill_postgres`, `kill_kafka`."""

    def __init__(self, state: Path) -> None:
        pg, kafka, controller, sasl = _free_ports(4)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")},
            "SUBLEDGER_SERVICES_DIR": str(state),
            "SUBLEDGER_PG_PORT": str(pg),
            "SUBLEDGER_KAFKA_PORT": str(kafka),
            "SUBLEDGER_KAFKA_CONTROLLER_PORT": str(controller),
            "SUBLEDGER_KAFKA_SASL_PORT": str(sasl),
        }
        if os.environ.get("SUBLEDGER_CACHE_DIR"):  # the Kafka jars already fetched
            self.env["SUBLEDGER_CACHE_DIR"] = os.environ["SUBLEDGER_CACHE_DIR"]
        self.state = state
        self.settings: dict[str, str] = {}

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [str(OPS), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            pytest.fail(f"ops/services {' '.join(args)}:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def up(self) -> None:
        self.run("up")
        for line in self.run("env").splitlines():
            match = re.fullmatch(r"export (\w+)=(.*)", line.strip())
            if match:
                self.settings[match.group(1)] = shlex.split(match.group(2))[0]

    def _pid(self, path: Path) -> int:
        return int(path.read_text().split()[0])

    def kill_postgres(self) -> None:
        """kill -9 of the postmaster (its backends die with it)."""
        os.kill(self._pid(self.state / "postgres" / "data" / "postmaster.pid"), 9)

    def kill_kafka(self) -> None:
        os.kill(self._pid(self.state / "kafka" / "kafka.pid"), 9)


@pytest.fixture(scope="session")
def own_services() -> Iterator[OwnServices]:
    state = Path(tempfile.mkdtemp(prefix="subledger-faults-"))
    services = OwnServices(state)
    try:
        services.up()
        yield services
    finally:
        subprocess.run([str(OPS), "down"], env=services.env, capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)
