"""Commission arithmetic, pure: integer minor units in, integer minor units out.

No Flask, no session. ``Decimal`` only where a percentage is applied, rounded
once per entry, half-up (PRODUCT.md §4 item 7).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MONEY_RE = re.compile(r"^-?\d{1,13}(\.\d{1,2})?$")
PERCENT_RE = re.compile(r"^\d{1,3}(\.\d{1,2})?$")


class NotOffered(KeyError):
    """The rate version has no amount for this tariff or add-on."""


@dataclass(frozen=True)
class Rates:
    """What a rate version says, as plain data."""

    version_id: int
    amounts: dict[str, int]            # tariff/add-on code → agent amount
    override_bp: int                   # supervisor override, basis points of the agent amount
    clawback_days: int
    tiers: tuple[tuple[int, int], ...] = field(default=())  # (activations, bonus_per_activation)


@dataclass(frozen=True)
class EntrySpec:
    """One ledger entry to write."""

    key: str
    kind: str
    bucket: str
    beneficiary_id: int
    amount: int
    ref_key: str | None = None


# --- parsing and formatting ----------------------------------------------------------


def parse_money(text: str, *, allow_negative: bool = False) -> int:
    """``"1234.5"`` → ``123450``. Refuses more than two decimals, floats' notation and junk."""
    value = str(text).strip().replace(" ", "").replace(",", ".")
    if not MONEY_RE.match(value) or (value.startswith("-") and not allow_negative):
        raise ValueError(f"not an amount: {text!r}")
    return int((Decimal(value) * 100).to_integral_exact())


def format_money(minor: int) -> str:
    """``123450`` → ``"1234.50"``; ``-5`` → ``"-0.05"``."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(int(minor)), 100)
    return f"{sign}{whole}.{cents:02d}"


def percent_to_bp(text) -> int:
    """``"10"`` or ``"12.5"`` → basis points (1000, 1250); 0–100 with at most two decimals."""
    value = str(text).strip()
    if not PERCENT_RE.match(value):
        raise ValueError(f"not a percentage: {text!r}")
    try:
        bp = int((Decimal(value) * 100).to_integral_exact())
    except InvalidOperation as exc:  # pragma: no cover - the regex already refuses
        raise ValueError(str(exc)) from exc
    if bp > 10000:
        raise ValueError("a percentage is at most 100")
    return bp


def bp_to_percent(bp: int) -> str:
    value = Decimal(bp) / 100
    return f"{value.normalize():f}"


# --- amounts -------------------------------------------------------------------------


def agent_amount(rates: Rates, tariff_code: str, addon_codes: list[str] | tuple[str, ...] = ()) -> int:
    """X: the agent amount of a contract = its tariff's amount plus each add-on's."""
    total = 0
    for code in (tariff_code, *addon_codes):
        if code not in rates.amounts:
            raise NotOffered(code)
        total += rates.amounts[code]
    return total


def override_amount(agent_minor: int, override_bp: int) -> int:
    """O = round(X × override %), once, half-up."""
    exact = Decimal(agent_minor) * Decimal(override_bp) / Decimal(10000)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def bonus(activations: int, tiers) -> int:
    """The highest tier whose threshold ≤ the count applies to every activation (tiers don't add up)."""
    best = None
    for threshold, per_activation in sorted(tiers):
        if threshold <= activations:
            best = per_activation
    return 0 if best is None else best * activations


def in_clawback_window(activated_at: datetime, cancelled_at: datetime, days: int) -> bool:
    return cancelled_at - activated_at <= timedelta(days=days)


# --- which entries an event writes (PRODUCT.md §4 item 3) ----------------------------


def signing_entries(number: str, agent_id: int, supervisor_id: int | None, rates: Rates,
                    tariff_code: str, addon_codes) -> list[EntrySpec]:
    x = agent_amount(rates, tariff_code, addon_codes)
    entries = [EntrySpec(f"accrual:{number}:{agent_id}", "accrual", "pending", agent_id, x)]
    if supervisor_id is not None:
        o = override_amount(x, rates.override_bp)
        entries.append(EntrySpec(f"override:{number}:{supervisor_id}", "override", "pending", supervisor_id, o))
    return entries


def activation_entries(number: str, accruals) -> list[EntrySpec]:
    """For each pending accrual/override (key, beneficiary, amount): release it and earn it.

    The amounts are copied from the entries resolved, never recomputed.
    """
    out = []
    for key, beneficiary_id, amount in accruals:
        out.append(EntrySpec(f"release:{number}:{beneficiary_id}", "release", "pending", beneficiary_id, -amount, key))
        out.append(EntrySpec(f"earned:{number}:{beneficiary_id}", "earned", "payable", beneficiary_id, amount, key))
    return out


def cancellation_entries(number: str, *, was_activated: bool, accruals, earned, activated_at: datetime | None,
                         cancelled_at: datetime, clawback_days: int) -> list[EntrySpec]:
    """Before activation: void the pending accruals. Within the window after it: claw back
    what was earned. Later: nothing (the cancellation shows on the statement)."""
    if not was_activated:
        return [EntrySpec(f"void:{number}:{b}", "void", "pending", b, -amount, key) for key, b, amount in accruals]
    if activated_at is not None and in_clawback_window(activated_at, cancelled_at, clawback_days):
        return [EntrySpec(f"clawback:{number}:{b}", "clawback", "payable", b, -amount, key) for key, b, amount in earned]
    return []
