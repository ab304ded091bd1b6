"""``flask territories …``: the operator imports buildings and polygons (report lines of PRODUCT.md §5)."""
from __future__ import annotations

import os
import sys

import click

from crm import clock
from crm.cli import operator_command


@click.group("territories", help="Buildings, territories and zones.")
def territories_cli():
    pass


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        click.echo(f"refused: cannot read {path}: {exc.strerror}")
        sys.exit(1)


def _report(result, key: str) -> None:
    from territories.importfile import report_lines

    for line in report_lines(result.imported, result.updated, result.unchanged, result.rejected, key=key):
        click.echo(line)


@territories_cli.command("import-buildings")
@click.argument("path", type=click.Path(dir_okay=False))
@operator_command
def import_buildings(path):
    """Import connected buildings from GeoJSON or CSV (idempotent on external_id)."""
    from territories import importfile, importer

    data = _read(path)
    try:
        records, rejections = importfile.parse_buildings(data, os.path.basename(path), tz=clock.company_zone())
    except importfile.FileUnreadable as exc:
        click.echo(f"refused: {exc}")
        sys.exit(1)
    _report(importer.import_buildings(records, rejections, source=f"cli:{os.path.basename(path)}"), "external_id")


@territories_cli.command("import-polygons")
@click.argument("path", type=click.Path(dir_okay=False))
@operator_command
def import_polygons(path):
    """Import territories and zones from GeoJSON (an existing name updates that polygon)."""
    from territories import importfile, importer

    data = _read(path)
    try:
        records, rejections = importfile.parse_polygons(data, os.path.basename(path))
    except importfile.FileUnreadable as exc:
        click.echo(f"refused: {exc}")
        sys.exit(1)
    _report(importer.import_polygons(records, rejections), "name")
