"""The access policy file (SUBLEDGER_POLICY): read as TOML, its rules parsed by domain.policy.

Every failure is one line naming the file: missing, unreadable, not TOML, or a key the
schema does not know (README, "Access control").
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from domain.commands import COMMANDS
from domain.policy import Policy, PolicyError, parse


def load(path: Path) -> Policy:
    """The policy in `path`; PolicyError, naming the file, if it cannot be used."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PolicyError(f"SUBLEDGER_POLICY: no file {path}") from None
    except IsADirectoryError:
        raise PolicyError(f"SUBLEDGER_POLICY: {path} is a directory, not a file") from None
    except PermissionError:
        raise PolicyError(f"SUBLEDGER_POLICY: cannot read {path} (permission denied)") from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy {path}: not UTF-8 text") from None
    except OSError as exc:
        why = (exc.strerror or "cannot be read").lower()
        raise PolicyError(f"SUBLEDGER_POLICY: cannot read {path} ({why})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy {path}: not valid TOML ({exc})") from None
    return parse(document, str(path), COMMANDS)
