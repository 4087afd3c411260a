"""The access policy as a CLI user meets it: the CLI is the source `cli`, a command the policy
does not allow it fails in one line and records nothing; personal data is read only by the
actors the policy lists; a bad policy file stops every command in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUBLEDGER = str(Path(sys.executable).with_name("subledger"))

POLICY = """
[sources.cli]
commands = ["DefinePlan", "RegisterCustomer"]
[personal_data]
actors = ["auditor-*"]
"""


def run(
    data_dir: Path, *args: str, policy: Path | None = None, actor: str = "e2e-user"
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env["SUBLEDGER_ACTOR"] = actor
    if policy is not None:
        env["SUBLEDGER_POLICY"] = str(policy)
    return subprocess.run(
        [SUBLEDGER, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def head(data_dir: Path) -> int:
    """How many events the store holds (read without a policy)."""
    status = json.loads(ok(run(data_dir, "projections", "status", "--format", "json")))
    return status[0]["head"]


@pytest.fixture
def book(tmp_path: Path) -> tuple[Path, Path]:
    """A plan and a customer recorded without a policy, and the policy file next to them."""
    d = tmp_path / "book"
    ok(run(d, "plan", "define", "basic", "--name", "Basic", "--pricing", "flat", "--price",
           "10.00", "--currency", "USD", "--at", "2025-01-01"))  # fmt: skip
    ok(run(d, "customer", "register", "cus_1", "--name", "Ada Lovelace", "--email",
           "ada@example.com", "--payment-token", "tok_visa", "--at", "2025-01-01"))  # fmt: skip
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return d, policy


def test_a_cli_command_the_policy_does_not_allow_fails_in_one_line_and_records_nothing(
    book,
) -> None:
    d, policy = book
    before = head(d)
    proc = run(d, "subscribe", "cus_1", "basic", "--subscription-id", "sub_1", "--at",
               "2025-01-02", policy=policy)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == f"error: source 'cli' may not issue Subscribe (policy {policy})\n"
    assert proc.stdout == ""
    assert head(d) == before
    assert run(d, "subscription", "show", "sub_1").returncode != 0  # no such subscription

    # the same command, published to Kafka, is refused before it leaves the CLI
    published = run(d, "subscribe", "cus_1", "basic", "--publish", policy=policy)
    assert published.returncode == 1
    assert "may not issue Subscribe" in published.stderr


def test_a_cli_command_the_policy_allows_is_recorded(book) -> None:
    d, policy = book
    before = head(d)
    ok(run(d, "customer", "register", "cus_2", "--name", "Grace Hopper", "--email",
           "grace@example.com", "--payment-token", "tok_visa", "--at", "2025-01-02",
           policy=policy))  # fmt: skip
    assert head(d) > before


def test_personal_data_is_refused_to_an_actor_the_policy_does_not_list(book) -> None:
    d, policy = book
    for args in (
        ("customer", "show", "cus_1", "--format", "json"),
        ("customer", "timeline", "cus_1", "--format", "json"),
        ("customer", "export", "cus_1"),
        ("notifications", "list", "--format", "json"),
        ("notifications", "read", "no-such-message"),
        ("export", "customers", "--format", "json"),
    ):
        proc = run(d, *args, policy=policy)
        assert proc.returncode == 1, args
        assert proc.stderr == (
            f"error: {' '.join(args[:2])} shows personal data, which actor 'e2e-user' may not"
            f" read (policy {policy}, [personal_data] actors)\n"
        )
        assert "Ada" not in proc.stdout and "ada@" not in proc.stdout
    # what holds no personal data stays readable
    exported = json.loads(ok(run(d, "export", "subscriptions", "--format", "json", policy=policy)))
    assert exported == []


def test_personal_data_is_shown_to_an_actor_the_policy_lists(book) -> None:
    d, policy = book
    args = ("customer", "show", "cus_1", "--format", "json")
    shown = json.loads(ok(run(d, *args, policy=policy, actor="auditor-eve")))
    assert shown["name"] == "Ada Lovelace"
    assert shown["email"] == "ada@example.com"
    exported = json.loads(
        ok(run(d, "export", "customers", "--format", "json", policy=policy, actor="auditor-eve"))
    )
    assert [(r["customer_id"], r["email"]) for r in exported] == [("cus_1", "ada@example.com")]


def test_without_a_policy_everything_is_allowed(book) -> None:
    d, _policy = book
    ok(run(d, "subscribe", "cus_1", "basic", "--subscription-id", "sub_1", "--at", "2025-01-02"))
    shown = json.loads(ok(run(d, "customer", "show", "cus_1", "--format", "json")))
    assert shown["email"] == "ada@example.com"


def test_a_bad_policy_file_stops_every_command_in_one_line_naming_the_file_and_key(
    book, tmp_path
) -> None:
    d, _policy = book
    bad = tmp_path / "bad.toml"
    bad.write_text('[sources.cli]\ncommands = ["Subscribe", "CancelEverything"]\n')
    before = head(d)
    proc = run(d, "subscribe", "cus_1", "basic", "--at", "2025-01-02", policy=bad)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"error: policy {bad}: sources.cli.commands: unknown command 'CancelEverything'"
    )
    assert proc.stderr.count("\n") == 1
    assert head(d) == before
    missing = run(d, "customer", "show", "cus_1", policy=tmp_path / "nowhere.toml")
    assert missing.returncode == 1
    assert missing.stderr == f"error: SUBLEDGER_POLICY: no file {tmp_path / 'nowhere.toml'}\n"
