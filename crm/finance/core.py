"""Pure finance arithmetic and formats: months, a period's figures from its entries, and the
payout export (CSV lines, XLSX workbook). No Flask, no session: plain data in, plain data out.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo

from crm.ledger.commission import format_money

PERIOD_RE = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")  # 1970–2999: no calendar edges

#: The payout file's header (PRODUCT.md §5), fixed.
HEADER = ("period", "personnel_number", "login", "name", "role", "supervisor", "accruals_earned",
          "overrides_earned", "bonuses", "adjustments", "clawbacks", "net", "currency")


# --- months --------------------------------------------------------------------------


def parse_period(text: str) -> str:
    """``"2026-10"`` → ``"2026-10"``; ValueError on anything else."""
    value = (text or "").strip()
    if not PERIOD_RE.match(value):
        raise ValueError(f"not a period YYYY-MM: {text!r}")
    return value


def next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def previous_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def period_of(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m")


def bounds(period: str, zone: tzinfo) -> tuple[datetime, datetime]:
    """The month's first instant and the first instant after it, in UTC."""
    year, month = int(period[:4]), int(period[5:7])
    start = datetime(year, month, 1, tzinfo=zone)
    nxt = next_period(period)
    end = datetime(int(nxt[:4]), int(nxt[5:7]), 1, tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def last_instant(period: str, zone: tzinfo) -> datetime:
    """The month's last representable instant (microseconds), in UTC."""
    return bounds(period, zone)[1] - timedelta(microseconds=1)


def periods_between(first: str, last: str) -> list[str]:
    out, p = [], first
    while p <= last:
        out.append(p)
        p = next_period(p)
    return out


# --- a period's figures --------------------------------------------------------------


@dataclass
class Figures:
    """One beneficiary's period, minor units. ``net`` = payable balance up to this period."""

    opening: int = 0
    accruals_earned: int = 0
    overrides_earned: int = 0
    bonuses: int = 0
    adjustments: int = 0
    clawbacks: int = 0
    payouts: int = 0
    pending_opening: int = 0
    pending_moves: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def payable_moves(self) -> int:
        return (self.accruals_earned + self.overrides_earned + self.bonuses + self.adjustments + self.clawbacks
                + self.payouts)

    @property
    def net(self) -> int:
        return self.opening + self.payable_moves

    @property
    def pending(self) -> int:
        return self.pending_opening + self.pending_moves


def fold(rows, *, opening: int = 0, pending_opening: int = 0) -> Figures:
    """Sum a period's entries ``(kind, bucket, earned_from, amount)`` into its figures.

    ``earned_from`` is the kind of the entry an ``earned`` one releases (``accrual`` for an
    agent's commission, ``override`` for a supervisor's); ignored for other kinds.
    """
    fig = Figures(opening=opening, pending_opening=pending_opening)
    for kind, bucket, earned_from, amount in rows:
        amount = int(amount)
        fig.by_kind[kind] = fig.by_kind.get(kind, 0) + amount
        if bucket == "pending":
            fig.pending_moves += amount
            continue
        if kind == "earned":
            if earned_from == "override":
                fig.overrides_earned += amount
            else:
                fig.accruals_earned += amount
        elif kind == "bonus":
            fig.bonuses += amount
        elif kind == "adjustment":
            fig.adjustments += amount
        elif kind == "clawback":
            fig.clawbacks += amount
        elif kind == "payout":
            fig.payouts += amount
        else:  # pragma: no cover - every payable kind is listed above
            raise ValueError(f"unexpected payable entry kind {kind}")
    return fig


# --- the payout export ---------------------------------------------------------------


@dataclass(frozen=True)
class PayoutRow:
    period: str
    personnel_number: str | None
    login: str
    name: str
    role: str
    supervisor: str | None
    accruals_earned: int
    overrides_earned: int
    bonuses: int
    adjustments: int
    clawbacks: int
    net: int

    def values(self, currency: str) -> list[str]:
        return [self.period, self.personnel_number or "", self.login, self.name, self.role, self.supervisor or "",
                format_money(self.accruals_earned), format_money(self.overrides_earned), format_money(self.bonuses),
                format_money(self.adjustments), format_money(self.clawbacks), format_money(self.net), currency]


def meta_line(period: str, generated: datetime, head: str) -> str:
    return f"# period={period} generated={generated.isoformat(timespec='seconds')} ledger_head={head}"


def _csv_line(values) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def csv_lines(period: str, generated: datetime, head: str, rows, currency: str):
    """The payout CSV as an iterator of text lines (streams: rows may be a lazy iterator)."""
    yield meta_line(period, generated, head) + "\n"
    yield _csv_line(HEADER)
    for row in rows:
        yield _csv_line(row.values(currency))


def write_xlsx(fileobj, period: str, generated: datetime, head: str, rows, currency: str) -> None:
    """The same header and rows on a sheet ``payout``, the metadata on a sheet ``about``.

    Amounts are text with two decimals, exactly as in the CSV, so the two files compare equal
    cell by cell and no spreadsheet turns kopecks into floats.
    """
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("payout")
    sheet.append(list(HEADER))
    count = 0
    for row in rows:
        sheet.append(row.values(currency))
        count += 1
    about = book.create_sheet("about")
    for key, value in (("period", period), ("generated", generated.isoformat(timespec="seconds")),
                       ("ledger_head", head), ("currency", currency), ("rows", str(count))):
        about.append([key, value])
    book.save(fileobj)
