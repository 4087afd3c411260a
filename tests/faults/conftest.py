"""The fault suite's own PostgreSQL and Kafka: `ops/services` in a services dir and on ports
of their own (bench/faults.py's OwnServices), so that killing them never disturbs the rest
of the suite or a parallel test process. Started once per session that runs a fault test,
stopped and deleted after it.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # pipeline_support

_spec = importlib.util.spec_from_file_location(
    "subledger_bench_faults", ROOT / "bench" / "faults.py"
)
assert _spec is not None and _spec.loader is not None
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)


@pytest.fixture(scope="session")
def own_services() -> Iterator[Any]:
    state = Path(tempfile.mkdtemp(prefix="subledger-faults-"))
    services = soak.OwnServices(state)
    try:
        try:
            services.up()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield services
    finally:
        services.down()
        shutil.rmtree(state, ignore_errors=True)
