"""The pure cores of finance and the dashboards, without an app: months, a period's figures,
the payout file's lines, SVG charts."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from crm.dashboards import charts
from crm.finance import core

YEKAT = ZoneInfo("Asia/Yekaterinburg")


def test_months_are_calendar_months_in_the_company_zone():
    assert core.next_period("2026-12") == "2027-01" and core.previous_period("2027-01") == "2026-12"
    start, end = core.bounds("2026-11", YEKAT)
    assert start == datetime(2026, 10, 31, 19, tzinfo=timezone.utc)  # 1 November 00:00 at UTC+5
    assert end == datetime(2026, 11, 30, 19, tzinfo=timezone.utc)
    assert core.last_instant("2026-11", YEKAT) < end and core.period_of(end, YEKAT) == "2026-12"
    assert core.periods_between("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert core.parse_period(" 2026-10 ") == "2026-10"
    for bad in ("2026-13", "2026-1", "26-01", "", "2026-00", "2026/10", "2026-10-01"):
        with pytest.raises(ValueError):
            core.parse_period(bad)


def test_fold_sums_each_kind_and_nets_the_payable_bucket():
    rows = [("earned", "payable", "accrual", 150000), ("earned", "payable", "override", 15000),
            ("clawback", "payable", None, -150000), ("bonus", "payable", None, 300000),
            ("adjustment", "payable", None, -2500), ("payout", "payable", None, -10000),
            ("accrual", "pending", None, 200000), ("release", "pending", None, -150000)]
    fig = core.fold(rows, opening=10000, pending_opening=5)
    assert (fig.accruals_earned, fig.overrides_earned, fig.clawbacks, fig.bonuses, fig.adjustments, fig.payouts) == \
        (150000, 15000, -150000, 300000, -2500, -10000)
    assert fig.net == 10000 + 150000 + 15000 - 150000 + 300000 - 2500 - 10000
    assert fig.pending == 5 + 200000 - 150000


def test_payout_csv_lines_quote_names_and_print_two_decimals():
    row = core.PayoutRow("2026-10", None, "agent7", 'Иванов, "Ваня"', "agent", "sup2", 150000, 0, 300000, -5, -150000,
                         299995)
    generated = datetime(2026, 11, 3, 10, tzinfo=YEKAT)
    lines = list(core.csv_lines("2026-10", generated, "12:" + "a" * 64, [row], "RUB"))
    assert lines[0] == f"# period=2026-10 generated=2026-11-03T10:00:00+05:00 ledger_head=12:{'a' * 64}\n"
    assert lines[1].strip() == ",".join(core.HEADER)
    parsed = next(csv.reader(io.StringIO(lines[2])))
    assert parsed == ["2026-10", "", "agent7", 'Иванов, "Ваня"', "agent", "sup2", "1500.00", "0.00", "3000.00",
                      "-0.05", "-1500.00", "2999.95", "RUB"]


def test_bars_scale_to_the_largest_value_escape_labels_and_link():
    svg = str(charts.bars([charts.Bar("<script>x</script>", 50, "50", "/r?a=1&b=2"),
                           charts.Bar("b", 100, "100", mark=80)], "t<"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and 'href="/r?a=1&amp;b=2"' in svg
    widths = [float(w) for w in re.findall(r'class="bar" x="0" y="\d+" width="([\d.]+)"', svg)]
    assert widths[1] == pytest.approx(charts.WIDTH - 104) and widths[0] == pytest.approx(widths[1] / 2)
    assert svg.count('class="mark"') == 1 and "<title>t&lt;</title>" in svg


def test_funnel_prints_each_steps_share_of_the_one_before():
    svg = str(charts.funnel([("Doors", 200, None), ("Contacts", 100, None), ("Leads", 5, None), ("Contracts", 0, None)],
                            "Funnel"))
    assert ">200<" in svg and "100 · 50%" in svg and "5 · 5.0%" in svg and "0 · 0%" in svg
    assert charts.percent(None) == "—" and charts.percent(0.123) == "12%"
