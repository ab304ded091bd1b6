"""``flask crm …`` and ``flask ledger …``: the operator's commands, with full scope.

Output lines are part of the product's interface (PRODUCT.md §5) and are never
translated; a refusal prints ``refused: …`` and exits 1.
"""
from __future__ import annotations

import functools
import os
import sys

import click
from flask.cli import with_appcontext
from flask_babel import force_locale

from crm import chain
from crm.actors import CLI, set_actor
from crm.errors import DomainError
from crm.extensions import db


def operator_command(fn):
    """Run as the operator in English; commit once on success, refuse cleanly on a DomainError."""

    @functools.wraps(fn)
    @with_appcontext
    def wrapped(*args, **kwargs):
        set_actor(CLI)
        with force_locale("en"):
            try:
                result = fn(*args, **kwargs)
            except DomainError as exc:
                db.session.rollback()
                click.echo(f"refused: {exc.message}")
                sys.exit(1)
            db.session.commit()
            return result

    return wrapped


@click.group("crm", help="People, API keys and the demo.")
def crm_cli():
    pass


@crm_cli.command("create-user")
@click.argument("login")
@click.option("--role", required=True, help="agent, supervisor, sales_head, finance or admin")
@click.option("--manager", "manager_login", help="login of the supervisor or sales head")
@click.option("--name", help="full name (defaults to the login)")
@click.option("--personnel-number", help="payroll number")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@operator_command
def create_user(login, role, manager_login, name, personnel_number, password_stdin):
    """Create a user. Password: stdin, else $DOORSTEP_PASSWORD, else generated and printed."""
    from crm.users import services

    manager = None
    if manager_login:
        manager = services.find_by_login(manager_login)
        if manager is None:
            raise DomainError("unknown_manager", f"no user {manager_login}")
    generated = False
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif os.environ.get("DOORSTEP_PASSWORD"):
        password = os.environ["DOORSTEP_PASSWORD"]
    else:
        password, generated = services.generate_password(), True
    user, _grant = services.create_user(None, login=login, name=name or login, role=role, manager=manager,
                                        personnel_number=personnel_number, password=password,
                                        must_change_password=generated)
    suffix = f", manager {manager.login}" if manager else ""
    click.echo(f"created {user.login} ({user.role}{suffix})")
    if generated:
        click.echo(f"password: {password}")


@crm_cli.command("reset-password")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="read the new password from standard input")
@operator_command
def reset_password(login, password_stdin):
    """Give LOGIN a temporary password (the only way for finance and sales head accounts)."""
    from crm.users import services

    user = services.find_by_login(login)
    if user is None:
        raise DomainError("unknown_user", f"no user {login}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise DomainError("password_required", "an empty password")
        services.set_temporary_password(None, user, password)
    else:
        password = services.issue_temporary_password(None, user)
    click.echo(f"password reset for {user.login}; it must be changed at the next sign-in")
    if not password_stdin:
        click.echo(f"password: {password}")


@crm_cli.command("add-tariff")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--speed", "speed", help="Mbit/s (internet and bundle tariffs)")
@click.option("--fee", required=True, help="monthly fee, e.g. 590.00")
@click.option("--kind", required=True, help="internet, tv, phone, bundle; add-ons: tv, phone, video_surveillance, router_rent")
@click.option("--addon", is_flag=True, help="an add-on rather than a tariff")
@operator_command
def add_tariff(code, name, speed, fee, kind, addon):
    """Add a tariff or add-on to the catalogue."""
    from crm.catalogue import services
    from crm.ledger.commission import parse_money

    try:
        fee_minor = parse_money(fee)
    except ValueError:
        raise DomainError("bad_fee", f"--fee {fee} is not an amount")
    try:
        speed_mbit = int(speed) if speed not in (None, "") else None
    except ValueError:
        raise DomainError("bad_speed", f"--speed {speed} is not a whole number")
    tariff = services.add_tariff(None, code=code, name=name, kind=kind, monthly_fee=fee_minor,
                                 speed_mbit=speed_mbit, is_addon=addon)
    click.echo(f"tariff {tariff.code} added")


@crm_cli.group("api-key", help="Keys for integrations (billing, installers, the network system).")
def api_key():
    pass


@api_key.command("create")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, help="repeat for several scopes")
@operator_command
def api_key_create(name, scopes):
    """Create a key; it is printed once, alone on the last line, and never shown again."""
    from crm.apikeys import services

    key, plain = services.create_key(None, name, list(scopes))
    click.echo(f"api key {key.name} ({' '.join(key.scope_list)}); store it now, it is not shown again:")
    click.echo(plain)


@api_key.command("revoke")
@click.argument("name")
@operator_command
def api_key_revoke(name):
    from crm.apikeys import services

    key = services.revoke_key(None, name)
    click.echo(f"revoked {key.name}")


@crm_cli.command("seed-demo")
@operator_command
def seed_demo():
    """Create the demo (idempotent): users now; the city, catalogue and history as they arrive."""
    from crm.demo import seed

    counts = seed()
    click.echo("demo ready: " + ", ".join(f"{n} {what}" for what, n in counts.items()))


@click.group("ledger", help="The hash chains: commission ledger and audit log.")
def ledger_cli():
    pass


@ledger_cli.command("add-rates")
@click.argument("path", type=click.Path(dir_okay=False))
@operator_command
def add_rates(path):
    """Add a rate version from a JSON file (amounts in minor units, a future effective_from)."""
    import json

    from crm.ledger import services

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DomainError("unreadable", f"cannot read {path}: {exc}")
    version = services.add_rate_version(None, doc)
    local = version.effective_from.astimezone(services.company_tz())
    click.echo(f"rate version {version.id} effective from {local.isoformat()}")


@ledger_cli.command("verify")
@click.option("--audit", "audit_chain", is_flag=True, help="check the audit log instead of the ledger")
@click.option("--expect", help="a published head POS:HEX that must still be in the chain")
@with_appcontext
def verify(audit_chain, expect):
    """Recompute every link of the chain; exit 1 at the first broken one."""
    from crm.database import write_intent

    name = "audit" if audit_chain else "ledger"
    model = chain.registered(name)
    expected = None
    if expect:
        try:
            expected = chain.parse_head(expect)
        except ValueError as exc:
            click.echo(f"refused: --expect {exc}")
            sys.exit(1)
    token = write_intent.set(False)  # a long read: never hold the SQLite write lock
    try:
        result = chain.verify(db.session, model, expect=expected)
        db.session.rollback()
    finally:
        write_intent.reset(token)
    click.echo(result.line(name))
    sys.exit(0 if result.ok else 1)
