"""The operator's commands print exactly the lines PRODUCT.md §5 fixes."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from crm.audit.models import AuditEvent
from crm.ledger.models import LedgerEntry
from crm.users.models import User


def _count(app, model):
    with app.app_context():
        from crm.extensions import db

        return db.session.scalar(select(func.count()).select_from(model))


def test_seed_demo_builds_the_demo_once(app, runner):
    first = runner.invoke(args=["crm", "seed-demo"])
    assert first.exit_code == 0, first.output
    match = re.fullmatch(r"demo ready: 19 users, (\d+) buildings, 3 territories, 12 zones, 7 tariffs, 3 rate versions, (\d+) contracts, "
                         r"(\d+) ledger entries, (\d+) visits, (\d+) closed periods\n", first.output)
    assert match, first.output
    events = _count(app, AuditEvent)
    second = runner.invoke(args=["crm", "seed-demo"])
    assert second.output == first.output
    assert _count(app, User) == 19 and _count(app, AuditEvent) == events
    assert runner.invoke(args=["ledger", "verify"]).output.startswith(f"ledger ok: {match.group(3)} entries")
    with app.app_context():
        from crm.catalogue.models import Tariff
        from crm.contracts.models import Contract
        from crm.extensions import db
        from crm.ledger import services as ledger
        from crm.ledger.models import RateVersion

        codes = set(db.session.scalars(select(Tariff.code)))
        assert {"net100", "net300", "net500", "tv", "phone"} <= codes
        statuses = set(db.session.scalars(select(Contract.status)))
        assert statuses == {"signed", "paid", "installation_scheduled", "activated", "cancelled"}
        assert db.session.scalar(select(func.count()).select_from(Contract).where(Contract.rate_version_id.is_(None)))
        future = db.session.scalars(select(RateVersion).where(RateVersion.effective_from > ledger.clock.now())).all()
        assert len(future) == 1
        kinds = set(db.session.scalars(select(LedgerEntry.kind)))
        assert {"accrual", "override", "release", "earned", "void", "clawback", "bonus", "payout",
                "adjustment"} <= kinds
        # finance: the previous month closed with bonuses and paid; adjustments approved, rejected and
        # waiting; an open dispute (PRODUCT.md §5 "Demo"); the test clock stands in November
        from crm.finance.models import Adjustment, Dispute, Payout, PeriodClose

        closed = db.session.scalars(select(PeriodClose.period).order_by(PeriodClose.period)).all()
        assert closed[-1] == "2026-10" and len(closed) == int(match.group(5)) >= 2
        assert db.session.get(Payout, "2026-10").entries > 0
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.kind == "bonus", LedgerEntry.period == "2026-10"))
        assert sorted(db.session.scalars(select(Adjustment.status))) == ["approved", "proposed", "rejected"]
        assert db.session.scalars(select(Dispute.status)).all() == ["open"]
        # a city: thousands of buildings, most zoned, some in each queue; every agent walks a zone
        from territories import services as territories
        from territories.models import Building, ZoneAssignment

        assert int(match.group(1)) >= 3000
        assert db.session.scalar(select(func.count()).select_from(Building).where(Building.territory_id.is_(None)))
        assert db.session.scalar(select(func.count()).select_from(Building).where(
            Building.territory_id.is_not(None), Building.zone_id.is_(None)))
        agents = set(db.session.scalars(select(ZoneAssignment.agent_id)))
        assert len(agents) == 12
        assert all(territories.current_assignment(zone_id) for zone_id in db.session.scalars(
            select(ZoneAssignment.zone_id)))
        # contracts are signed by agents in the zones they walk
        off_zone = db.session.scalar(select(func.count()).select_from(Contract).join(
            Building, Building.id == Contract.building_id).join(
            ZoneAssignment, (ZoneAssignment.zone_id == Building.zone_id) & (ZoneAssignment.agent_id == Contract.agent_id),
            isouter=True).where(ZoneAssignment.id.is_(None)))
        assert off_zone == 0
        # weeks of visits in every outcome, each demo contract at a door its agent walks with its signed visit
        from crm.visits.models import Visit
        from crm.visits.rules import OUTCOMES

        assert int(match.group(4)) >= 1000
        assert set(db.session.scalars(select(Visit.outcome).distinct())) == set(OUTCOMES)
        unsigned = db.session.scalar(select(func.count()).select_from(Contract).where(
            ~Contract.id.in_(select(Visit.contract_id).where(Visit.contract_id.is_not(None)))))
        assert unsigned == 0
    with app.app_context():
        from crm.users.services import check_password, find_by_login

        roles = {u.login: (u.role, u.manager.login if u.manager else None)
                 for u in [find_by_login(x) for x in ("head", "sup2", "agent7", "agent12", "fin2", "admin")]}
        assert roles == {"head": ("sales_head", None), "sup2": ("supervisor", "head"), "agent7": ("agent", "sup2"),
                         "agent12": ("agent", "sup3"), "fin2": ("finance", None), "admin": ("admin", None)}
        assert check_password(find_by_login("agent7"), "demo")


def test_create_user_with_manager_and_password_from_the_environment(demo_app):
    app, runner = demo_app, demo_app.test_cli_runner()
    result = runner.invoke(args=["crm", "create-user", "agent13", "--role", "agent", "--manager", "sup2"],
                           env={"DOORSTEP_PASSWORD": "from-env-123"})
    assert result.exit_code == 0
    assert result.output == "created agent13 (agent, manager sup2)\n"
    with app.app_context():
        from crm.users.services import check_password, find_by_login

        user = find_by_login("agent13")
        assert check_password(user, "from-env-123") and not user.must_change_password


def test_create_user_reads_stdin_or_generates_and_prints(app, runner):
    result = runner.invoke(args=["crm", "create-user", "fin9", "--role", "finance", "--password-stdin"],
                           input="typed-secret\n", env={"DOORSTEP_PASSWORD": ""})
    assert result.output == "created fin9 (finance)\n"
    result = runner.invoke(args=["crm", "create-user", "admin9", "--role", "admin"], env={"DOORSTEP_PASSWORD": ""})
    lines = result.output.splitlines()
    assert lines[0] == "created admin9 (admin)"
    generated = re.fullmatch(r"password: (\S{12})", lines[1]).group(1)
    with app.app_context():
        from crm.users.services import check_password, find_by_login

        assert check_password(find_by_login("fin9"), "typed-secret")
        assert check_password(find_by_login("admin9"), generated) and find_by_login("admin9").must_change_password


def test_create_user_refusals_exit_1_in_english(demo_app):
    runner = demo_app.test_cli_runner()
    for args, reason in (
        (["agent1", "--role", "agent"], "already taken"),
        (["agent20", "--role", "agent", "--manager", "fin1"], "must be an active supervisor"),
        (["agent21", "--role", "agent", "--manager", "ghost"], "no user ghost"),
        (["Bad Login!", "--role", "agent"], "lowercase"),
    ):
        result = runner.invoke(args=["crm", "create-user", *args], env={"DOORSTEP_PASSWORD": "x-password"})
        assert result.exit_code == 1, args
        assert result.output.startswith("refused: ") and reason in result.output, result.output


def test_api_key_create_prints_the_key_alone_on_the_last_line_and_revoke(app, runner):
    result = runner.invoke(args=["crm", "api-key", "create", "--name", "billing", "--scope", "contracts:events",
                                 "--scope", "buildings:write"])
    assert result.exit_code == 0
    key = result.output.splitlines()[-1]
    assert re.fullmatch(r"dsk_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}", key)
    with app.app_context():
        from crm.apikeys.models import ApiKey
        from crm.extensions import db

        row = db.session.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix) and row.scope_list == ["buildings:write", "contracts:events"]
    again = runner.invoke(args=["crm", "api-key", "create", "--name", "billing", "--scope", "contracts:events"])
    assert again.exit_code == 1 and again.output.startswith("refused: ")
    bad = runner.invoke(args=["crm", "api-key", "create", "--name", "x", "--scope", "money:all"])
    assert bad.exit_code == 1 and "refused: " in bad.output
    revoked = runner.invoke(args=["crm", "api-key", "revoke", "billing"])
    assert revoked.exit_code == 0 and revoked.output == "revoked billing\n"
    twice = runner.invoke(args=["crm", "api-key", "revoke", "billing"])
    assert twice.exit_code == 1 and twice.output.startswith("refused: ")
    unknown = runner.invoke(args=["crm", "api-key", "revoke", "nothing"])
    assert unknown.exit_code == 1


def test_verify_audit_reports_the_head_of_what_the_cli_wrote(demo_app):
    app, runner = demo_app, demo_app.test_cli_runner()
    runner.invoke(args=["crm", "create-user", "agent13", "--role", "agent", "--manager", "sup1"],
                  env={"DOORSTEP_PASSWORD": "long-enough-1"})
    result = runner.invoke(args=["ledger", "verify", "--audit"])
    assert result.exit_code == 0
    match = re.fullmatch(r"audit ok: (\d+) entries, head ([0-9a-f]{64})\n", result.output)
    assert match and int(match.group(1)) == _count(app, AuditEvent)
    with app.app_context():
        from crm.extensions import db

        last = db.session.scalars(select(AuditEvent).order_by(AuditEvent.position.desc())).first()
        assert match.group(2) == last.hash and last.actor_label == "cli"


def test_reset_password_is_the_operators_way_for_finance_accounts(demo_app):
    app, runner = demo_app, demo_app.test_cli_runner()
    result = runner.invoke(args=["crm", "reset-password", "fin1"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "password reset for fin1; it must be changed at the next sign-in"
    new = re.fullmatch(r"password: (\S{12})", lines[1]).group(1)
    typed = runner.invoke(args=["crm", "reset-password", "head", "--password-stdin"], input="typed-one-9\n")
    assert typed.output == "password reset for head; it must be changed at the next sign-in\n"
    with app.app_context():
        from crm.users.services import check_password, find_by_login

        assert check_password(find_by_login("fin1"), new) and find_by_login("fin1").must_change_password
        assert check_password(find_by_login("head"), "typed-one-9")
    assert runner.invoke(args=["crm", "reset-password", "ghost"]).exit_code == 1


def _lines_of_a_fresh_start(tmp_path, after_create_app: str) -> list[str]:
    """The printed lines of ``after_create_app`` run in a new interpreter that has just built the app."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = "import sys, app; app.create_app({'SQLALCHEMY_DATABASE_URI': sys.argv[1]}); " + after_create_app
    return subprocess.run([sys.executable, "-c", script, f"sqlite:///{tmp_path / 'start.db'}"], cwd=root,
                          capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()


def test_starting_the_app_leaves_the_map_libraries_unloaded(tmp_path):
    """Every CLI command and worker builds the app; numpy, shapely and pyproj (about a fifth of
    the start-up) load only when a polygon is first handled."""
    out = _lines_of_a_fresh_start(tmp_path, (
        "import territories.services, territories.importfile; "
        "print(sorted(m for m in ('numpy', 'shapely', 'pyproj', 'geopandas', 'folium') if m in sys.modules)); "
        "territories.services.locate([56.8], [60.6], ([], [], {})); "
        "print(sorted(m for m in ('numpy', 'shapely', 'pyproj') if m in sys.modules))"))
    assert out == ["[]", "['numpy', 'pyproj', 'shapely']"], out


def test_starting_the_app_leaves_the_orm_mappers_unconfigured_until_first_used(tmp_path):
    """Configuring every mapper costs a tenth of the start-up, and a command like ``ledger
    verify`` never needs it: nothing at import may build an ORM alias; the first query does it."""
    out = _lines_of_a_fresh_start(tmp_path, (
        "from crm.visits.models import Visit; print(Visit.__mapper__.configured); "
        "from crm.visits import services; services._door_facts_statement(); "
        "print(Visit.__mapper__.configured)"))
    assert out == ["False", "True"], out
