"""The contract status table of PRODUCT.md §3: pure, no Flask, no session."""
from __future__ import annotations

STATUSES = ("signed", "paid", "installation_scheduled", "activated", "cancelled")
EVENTS = ("paid", "installation_scheduled", "activated", "cancelled")

#: from → the statuses it may move to; anything else is refused
TRANSITIONS: dict[str, frozenset[str]] = {
    "signed": frozenset({"paid", "installation_scheduled", "activated", "cancelled"}),
    "paid": frozenset({"installation_scheduled", "activated", "cancelled"}),
    "installation_scheduled": frozenset({"installation_scheduled", "activated", "cancelled"}),
    "activated": frozenset({"cancelled"}),
    "cancelled": frozenset(),
}


def allowed(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())
