"""The access policy: its TOML schema, the one-line refusals of a bad file, and the rules
(which source may issue which command, which actors may read personal data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.policy_file import load
from bootstrap import Config, access_policy
from consumers.serve import check_policy
from domain.commands import COMMANDS
from domain.policy import Forbidden, PolicyError, parse

GOOD = """
[sources.crm]
commands = ["RegisterCustomer", "UpdateCustomer"]   # names as in the Avro contract
[sources.cli]
commands = ["*"]
[sources.readonly]
commands = []
[personal_data]
actors = ["alice", "auditor-*"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_a_source_issues_only_the_commands_listed_for_it(tmp_path) -> None:
    policy = load(write(tmp_path, GOOD))
    assert policy.allows("crm", "RegisterCustomer")
    assert policy.allows("crm", "UpdateCustomer")
    assert not policy.allows("crm", "CancelSubscription")
    assert not policy.allows("readonly", "RegisterCustomer")


def test_a_star_allows_every_command_of_the_contract(tmp_path) -> None:
    policy = load(write(tmp_path, GOOD))
    assert all(policy.allows("cli", name) for name in COMMANDS)


def test_a_source_the_policy_does_not_name_issues_nothing(tmp_path) -> None:
    policy = load(write(tmp_path, GOOD))
    assert not policy.allows("billing-team", "RegisterCustomer")
    assert not policy.allows("CRM", "RegisterCustomer")  # names are exact


def test_the_refusal_names_the_source_the_command_and_the_policy(tmp_path) -> None:
    path = write(tmp_path, GOOD)
    policy = load(path)
    with pytest.raises(Forbidden) as refused:
        policy.check("crm", "CancelSubscription")
    assert str(refused.value) == f"source 'crm' may not issue CancelSubscription (policy {path})"
    assert refused.value.code == "forbidden"
    policy.check("crm", "UpdateCustomer")  # allowed: no error


def test_personal_data_readers_match_by_pattern_case_sensitively(tmp_path) -> None:
    policy = load(write(tmp_path, GOOD))
    assert policy.may_read_personal_data("alice")
    assert policy.may_read_personal_data("auditor-bob")
    assert not policy.may_read_personal_data("Alice")
    assert not policy.may_read_personal_data("alice2")
    assert not policy.may_read_personal_data("auditor")
    assert not policy.may_read_personal_data("mallory")


def test_without_a_personal_data_table_nobody_reads_personal_data(tmp_path) -> None:
    policy = load(write(tmp_path, '[sources.cli]\ncommands = ["*"]\n'))
    assert not policy.may_read_personal_data("alice")
    assert policy.allows("cli", "RegisterCustomer")


def test_an_empty_file_allows_nothing(tmp_path) -> None:
    policy = load(write(tmp_path, ""))
    assert not policy.allows("cli", "RegisterCustomer")
    assert not policy.may_read_personal_data("alice")


CRM = "sources.crm.commands"


@pytest.mark.parametrize(
    ("text", "key", "what"),
    [
        ("[sourcs.crm]\ncommands = []\n", "sourcs", "unknown key"),
        (
            '[sources.crm]\ncommands = ["RegisterCustomers"]\n',
            CRM,
            "unknown command 'RegisterCustomers'",
        ),
        ('[sources.crm]\ncommands = "RegisterCustomer"\n', CRM, "must be a list"),
        ("[sources.crm]\ncommands = [1]\n", CRM, "must be a list of non-empty strings"),
        ('[sources.crm]\ncommand = ["RegisterCustomer"]\n', "sources.crm.command", "unknown key"),
        ("[sources.crm]\n", CRM, "missing"),
        ('sources = ["crm"]\n', "sources", "must be a table"),
        ('[sources]\ncrm = ["RegisterCustomer"]\n', "sources.crm", "must be a table"),
        ('[personal_data]\nactors = "alice"\n', "personal_data.actors", "must be a list"),
        ('[personal_data]\nreaders = ["alice"]\n', "personal_data.readers", "unknown key"),
        ('personal_data = ["alice"]\n', "personal_data", "must be a table"),
        ('[personal_data]\nactors = [""]\n', "personal_data.actors", "non-empty strings"),
    ],
)
def test_a_bad_policy_is_refused_in_one_line_naming_the_file_and_the_key(
    tmp_path, text: str, key: str, what: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as refused:
        load(path)
    message = str(refused.value)
    assert message.startswith(f"policy {path}: {key}: "), message
    assert what in message
    assert "\n" not in message


def test_a_file_that_is_not_toml_is_refused_naming_it(tmp_path) -> None:
    path = write(tmp_path, "[sources.crm\ncommands = [")
    with pytest.raises(PolicyError, match=rf"^policy {path}: not valid TOML \(.*line 1"):
        load(path)


def test_a_missing_file_is_refused_naming_the_setting(tmp_path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(PolicyError, match=rf"^SUBLEDGER_POLICY: no file {missing}$"):
        load(missing)


def test_parse_works_on_a_document_without_any_file() -> None:
    policy = parse({"sources": {"crm": {"commands": ["Subscribe"]}}}, "inline", ["Subscribe"])
    assert policy.allows("crm", "Subscribe")
    with pytest.raises(PolicyError, match=r"^policy inline: sources\.crm\.commands: unknown"):
        parse({"sources": {"crm": {"commands": ["Cancel"]}}}, "inline", ["Subscribe"])


def test_config_takes_the_policy_from_the_environment_and_bootstrap_loads_it(tmp_path) -> None:
    path = write(tmp_path, GOOD)
    config = Config.from_env({"SUBLEDGER_POLICY": str(path)})
    assert config.policy == path
    policy = access_policy(config)
    assert policy is not None and policy.allows("crm", "UpdateCustomer")
    unset = Config.from_env({"SUBLEDGER_POLICY": ""})
    assert unset.policy is None and access_policy(unset) is None


def test_serve_says_in_its_first_line_when_there_is_no_policy() -> None:
    assert check_policy(None, ["commands"], "wall") == (
        "no access policy (SUBLEDGER_POLICY unset): every source may issue every command"
    )


def test_serve_describes_the_policy_it_enforces(tmp_path) -> None:
    path = write(tmp_path, GOOD)
    line = check_policy(load(path), ["commands"], "manual")
    assert line == (
        f"access policy {path}: sources cli (every command), crm (2 commands),"
        " readonly (0 commands); personal data: alice, auditor-*"
    )


def test_serve_refuses_a_policy_that_forbids_its_own_scheduler_and_payments(tmp_path) -> None:
    policy = load(write(tmp_path, GOOD))
    with pytest.raises(ValueError, match=r"\[sources.scheduler\] commands = \[\"AdvanceClock\"\]"):
        check_policy(policy, ["commands", "scheduler"], "wall")
    check_policy(policy, ["commands", "scheduler"], "manual")  # no ticks: nothing to allow
    with pytest.raises(ValueError, match="RecordChargeOutcome, RecordRefundOutcome"):
        check_policy(policy, ["payments"], "manual")
    allowed = load(
        write(
            tmp_path,
            '[sources.scheduler]\ncommands = ["AdvanceClock"]\n'
            '[sources.payments]\ncommands = ["RecordChargeOutcome", "RecordRefundOutcome"]\n',
        )
    )
    assert check_policy(allowed, ["scheduler", "payments"], "wall").startswith("access policy")
