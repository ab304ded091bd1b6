"""``flask finance …``: close a month, export its payout file, record its payout.

Output lines are fixed (PRODUCT.md §5) and never translated; refusals print
``refused: …`` and exit 1 (``crm.cli.operator_command``).
"""
from __future__ import annotations

import os
import sys

import click

from crm.cli import operator_command
from crm.errors import DomainError
from crm.extensions import db


@click.group("finance", help="Periods, payout files and payouts.")
def finance_cli():
    pass


@finance_cli.command("close")
@click.option("--period", required=True, help="the month to close, YYYY-MM")
@operator_command
def close(period):
    """Close a finished month for good: bonuses, snapshots, the ledger head."""
    from crm.finance import services

    closed = services.close_period(None, period)
    click.echo(f"closed {closed.period}: {closed.beneficiaries} beneficiaries, head {closed.head}")


@finance_cli.command("export")
@click.option("--period", required=True, help="a closed month, YYYY-MM")
@click.option("--format", "fmt", required=True, type=click.Choice(["csv", "xlsx"]))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="file to write")
@operator_command
def export(period, fmt, out):
    """Write the payout file of a closed month (same figures and head every time)."""
    from crm.database import read_only
    from crm.finance import services

    job = services.start_export(None, period, fmt, record=False)
    tmp = f"{out}.part"
    try:
        with read_only(db.session):  # a long read: never hold the writer lock while writing a file
            _write(job, fmt, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise DomainError("unwritable", f"cannot write {out}: {exc.strerror or exc}")
    services.record_export(job)  # written: now audit it (a short write; the commit follows)
    click.echo(f"exported {job.period} to {out}")


def _write(job, fmt: str, path: str) -> None:
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as fh:
            for line in job.csv_lines():
                fh.write(line)
    else:
        with open(path, "wb") as fh:
            job.write_xlsx(fh)


@finance_cli.command("record-payout")
@click.option("--period", required=True, help="a closed month, YYYY-MM")
@operator_command
def record_payout(period):
    """Write one payout entry of −net per beneficiary with a positive net; once per period."""
    from crm.finance import services

    payout = services.record_payout(None, period)
    click.echo(f"recorded payout {payout.period}: {payout.entries} entries")
    sys.stdout.flush()
