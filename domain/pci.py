"""Keep card numbers out: the ledger stores gateway tokens only, so PCI scope stays elsewhere.

The rule (`refuse_card_numbers`) lives here; finding and masking numbers is `domain.cards`,
whose functions this module also offers to the edges (CLI, Kafka rejections, logs).
"""

from __future__ import annotations

from domain.cards import (
    MAX_DEPTH,
    find_card_number,
    mask_card_numbers,
    mask_card_numbers_in_bytes,
    mask_value,
    safe_repr,
)
from domain.errors import CardNumberRefused

__all__ = [
    "find_card_number",
    "mask_card_numbers",
    "mask_card_numbers_in_bytes",
    "mask_value",
    "refuse_card_numbers",
    "safe_repr",
]


def _scan(value: object, name: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        if find_card_number(value):
            raise CardNumberRefused(_message(name))
    elif isinstance(value, dict):
        for key, item in value.items():
            if find_card_number(str(key)):  # never echo the key: it is the card number
                raise CardNumberRefused(_message(name or "(key)"))
            _scan(item, f"{name}.{key}" if name else str(key), depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _scan(item, f"{name}[{i}]", depth + 1)


def _message(name: str) -> str:
    return (
        f"field '{name}' looks like a payment card number; "
        "send a gateway token such as tok_visa instead"
    )


def refuse_card_numbers(fields: dict[str, object]) -> None:
    """Refuse any command whose fields carry a card number, naming the field but never the value."""
    _scan(fields, "", 0)
