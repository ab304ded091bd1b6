"""Finance (PRODUCT.md §4 items 8–11): periods that close for good, bonuses at the tier edges,
late entries, four-eyes adjustments, disputes, statements, payout files and payouts.

Expected figures are computed here, independently, from the events each test applies and
the rates in ``tests.money.RATES`` — never read back from the code under test.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, text

from crm.errors import DomainError, Forbidden
from tests.helpers import login, operator, post, user_id
from tests.money import RATES, build_world, event, sign

UTC = timezone.utc
AMOUNT = {**RATES["agent"]["tariffs"], **RATES["agent"]["addons"]}
HEADER = ("period,personnel_number,login,name,role,supervisor,accruals_earned,overrides_earned,bonuses,"
          "adjustments,clawbacks,net,currency")


def override(x: int) -> int:
    """10 % of the agent amount, half-up, once (the rates' supervisor_override_percent)."""
    return int((Decimal(x) * Decimal(RATES["supervisor_override_percent"]) / 100).quantize(1, ROUND_HALF_UP))


def money(minor: int) -> str:
    return f"{Decimal(minor) / 100:.2f}"


def nov(day, hour=12):
    """A moment in November 2026 (the company zone is UTC+5: noon UTC is 17:00 local)."""
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def world(demo_app, clock):
    build_world(demo_app, clock, buildings=5)
    return demo_app


def run(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def finance(app, fn, *args, **kwargs):
    """Call a finance service as the operator, committing on success."""
    from crm.finance import services

    with operator(app):
        return getattr(services, fn)(*args, **kwargs)


# --- closing ---------------------------------------------------------------------------


def test_close_only_finished_months_in_order_and_never_reopen(world, clock):
    number = sign(world, clock)
    clock.advance(hours=1)
    event(world, number, "activated", clock.now())
    clock.set(nov(28))
    assert run(world, "finance", "close", "--period", "2026-11") == (1, "refused: 2026-11 is not finished yet.\n")
    clock.set(datetime(2026, 12, 2, 5, tzinfo=UTC))
    sign(world, clock, flat=2)  # December has entries too
    clock.set(datetime(2027, 1, 2, 5, tzinfo=UTC))
    code, out = run(world, "finance", "close", "--period", "2026-12")
    assert (code, out) == (1, "refused: Periods close in order: close 2026-11 first.\n")
    assert run(world, "finance", "close", "--period", "2026-13")[0] == 1
    with world.app_context():
        from crm.ledger import services as ledger

        pos, head = ledger.head()
    code, out = run(world, "finance", "close", "--period", "2026-11")
    assert (code, out) == (0, f"closed 2026-11: 2 beneficiaries, head {pos}:{head}\n")  # no bonus: no tier reached
    code, out = run(world, "finance", "close", "--period", "2026-11")
    assert code == 1 and "already closed" in out
    assert run(world, "finance", "close", "--period", "2026-10")[0] == 1  # before the first close: never
    assert run(world, "finance", "close", "--period", "2027-01")[0] == 1  # January is not over
    assert run(world, "finance", "close", "--period", "2026-12")[0] == 0

    with world.app_context():  # the database itself refuses to reopen or edit a close
        from crm.extensions import db

        for statement in ("DELETE FROM period_closes", "UPDATE period_closes SET head_hash = 'x'",
                          "UPDATE period_snapshots SET net = net + 1", "DELETE FROM period_snapshots"):
            with pytest.raises(Exception, match="(immutable|append-only): (UPDATE|DELETE) refused"):
                db.session.execute(text(statement))
            db.session.rollback()
    assert run(world, "ledger", "verify", "--expect", f"{pos}:{head}")[0] == 0


def test_the_first_close_may_be_any_month_before_which_nothing_happened(world, clock):
    clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    code, out = run(world, "finance", "close", "--period", "2026-10")  # no entries at all yet
    assert code == 0 and out.startswith("closed 2026-10: 0 beneficiaries, head 0:" + "0" * 64)
    assert run(world, "finance", "close", "--period", "2026-09")[0] == 1  # before the first close: never
    assert run(world, "finance", "close", "--period", "2026-11")[0] == 0


# --- bonuses ---------------------------------------------------------------------------


def test_bonuses_at_and_around_the_tier_edges_exclude_cancellations_before_close(world, clock):
    """Tiers 30 → 100.00 and 50 → 150.00 per activation (PRODUCT.md §4 item 8)."""
    plan = {"agent1": 29, "agent2": 30, "agent3": 31, "agent5": 50, "agent6": 55}
    flats = iter((b, f) for b in ("b1", "b2", "b3", "b4", "b5") for f in range(1, 61))
    signed: dict[str, list[str]] = {}
    for agent, count in plan.items():
        for _ in range(count + 1):  # one extra each, cancelled after activation but before the close
            building, flat = next(flats)
            signed.setdefault(agent, []).append(sign(world, clock, agent=agent, building=building, flat=flat))
    # agent4: 30 activations, but one of them is in December: 29 in November → no bonus
    for _ in range(30):
        building, flat = next(flats)
        signed.setdefault("agent4", []).append(sign(world, clock, agent="agent4", building=building, flat=flat))
    clock.set(datetime(2026, 12, 1, 0, tzinfo=UTC))  # 05:00 local on 1 December
    for agent, numbers in signed.items():
        for i, number in enumerate(numbers):
            at = nov(25) if not (agent == "agent4" and i == 0) else datetime(2026, 11, 30, 19, 30, tzinfo=UTC)
            event(world, number, "activated", at)  # 19:30 UTC = 00:30 on 1 December local
        if agent != "agent4":
            event(world, numbers[-1], "cancelled", nov(27))
    clock.set(datetime(2026, 12, 3, 6, tzinfo=UTC))
    assert run(world, "finance", "close", "--period", "2026-11")[0] == 0
    expected = {"agent1": 0, "agent2": 30 * 10000, "agent3": 31 * 10000, "agent4": 0, "agent5": 50 * 15000,
                "agent6": 55 * 15000}
    with world.app_context():
        from crm.extensions import db
        from crm.finance.models import PeriodSnapshot
        from crm.ledger.models import LedgerEntry

        bonuses = {e.beneficiary.login: (e.amount, e.bucket, e.period)
                   for e in db.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "bonus"))}
        assert bonuses == {a: (b, "payable", "2026-11") for a, b in expected.items() if b}
        snaps = {s.login: s.bonuses for s in db.session.scalars(select(PeriodSnapshot))}
        assert {a: snaps[a] for a in expected} == expected
        assert all(v == 0 for k, v in snaps.items() if k.startswith("sup"))  # overrides never apply to bonuses
    # a cancellation after the close claws back its own commission only; the bonus stays
    clock.advance(days=1)
    event(world, signed["agent2"][0], "cancelled", clock.now())
    with world.app_context():
        from crm.ledger.models import LedgerEntry

        kinds = [e.kind for e in db.session.scalars(select(LedgerEntry).where(
            LedgerEntry.beneficiary_id == user_id(world, "agent2"), LedgerEntry.kind.in_(("bonus", "clawback"))))]
        assert sorted(kinds) == ["bonus", "clawback", "clawback"]


# --- late entries ----------------------------------------------------------------------


def test_late_entries_land_in_the_earliest_open_month_and_name_the_one_they_correct(world, clock):
    clock.set(nov(20))
    early = sign(world, clock, flat=1)
    late = sign(world, clock, flat=2)
    clock.set(nov(22))
    event(world, early, "activated", nov(21))
    clock.set(datetime(2026, 12, 2, 5, tzinfo=UTC))
    assert run(world, "finance", "close", "--period", "2026-11")[0] == 0
    # billing reports on 2 December what happened on 29 and 30 November
    event(world, late, "activated", nov(29))
    event(world, early, "cancelled", nov(30))
    with world.app_context():
        from crm.extensions import db
        from crm.ledger.models import LedgerEntry

        rows = [(e.kind, e.period, e.corrects_period) for e in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.position > 8).order_by(LedgerEntry.position))]  # after the close
    assert rows == [("release", "2026-12", "2026-11"), ("earned", "2026-12", "2026-11")] * 2 + \
        [("clawback", "2026-12", "2026-11")] * 2
    # an event of December itself is not marked
    other = sign(world, clock, flat=3)
    with world.app_context():
        corrects = db.session.scalars(select(LedgerEntry.corrects_period).where(
            LedgerEntry.contract.has(number=other))).all()
    assert corrects == [None, None]


# --- adjustments (four eyes) -----------------------------------------------------------


def _users(app, *logins):
    from crm.users.services import find_by_login

    return [find_by_login(x) for x in logins]


def test_adjustments_need_a_finance_user_who_is_neither_author_nor_beneficiary(world, clock):
    from crm.finance import services

    with operator(world):
        sup1, agent1, fin1, fin2, head, admin, agent2 = _users(world, "sup1", "agent1", "fin1", "fin2", "head",
                                                               "admin", "agent2")
        a = services.propose_adjustment(sup1, beneficiary=agent1, amount=50000, reason="missed flat 57")
        b = services.propose_adjustment(fin1, beneficiary=sup1, amount=-2500, reason="double override")
        ids = a.id, b.id
    with world.app_context():
        from crm.extensions import db
        from crm.finance.models import Adjustment

        sup1, agent1, fin1, fin2, head, admin, agent2, sup2 = _users(world, "sup1", "agent1", "fin1", "fin2", "head",
                                                                     "admin", "agent2", "sup2")
        a, b = db.session.get(Adjustment, ids[0]), db.session.get(Adjustment, ids[1])
        for who in (sup1, head, admin, agent1):  # not finance
            with pytest.raises(Forbidden):
                services.approve_adjustment(who, a)
        with pytest.raises(Forbidden) as refused:
            services.approve_adjustment(fin1, b)  # its author
        assert refused.value.code == "own_proposal"
        for who, beneficiary in ((agent1, agent2), (admin, agent1), (sup2, agent1), (sup1, sup1)):
            with pytest.raises(Forbidden):  # agents, admins, another team's supervisor, oneself
                services.propose_adjustment(who, beneficiary=beneficiary, amount=100, reason="x")
        for beneficiary in (fin2, head):  # finance and sales heads are not paid from the ledger
            with pytest.raises(DomainError):
                services.propose_adjustment(fin1, beneficiary=beneficiary, amount=100, reason="x")
        for amount in (0, 10**12):
            with pytest.raises(DomainError):
                services.propose_adjustment(fin1, beneficiary=agent1, amount=amount, reason="x")
        with pytest.raises(DomainError):
            services.propose_adjustment(fin1, beneficiary=agent1, amount=100, reason="   ")
        db.session.rollback()
    with operator(world):
        fin2, = _users(world, "fin2")
        adjustment = db.session.get(Adjustment, ids[0])
        services.approve_adjustment(fin2, adjustment)
        assert adjustment.status == "approved" and adjustment.entry_position
        position = adjustment.entry_position
    with world.app_context():
        from crm.ledger.models import LedgerEntry

        entry = db.session.get(LedgerEntry, position)
        assert (entry.kind, entry.bucket, entry.amount, entry.beneficiary.login) == ("adjustment", "payable", 50000,
                                                                                     "agent1")
        fin2, = _users(world, "fin2")
        with pytest.raises(DomainError) as refused:
            services.approve_adjustment(fin2, db.session.get(Adjustment, ids[0]))
        assert refused.value.code == "decided"
        db.session.rollback()
    with operator(world):
        fin2, = _users(world, "fin2")
        services.reject_adjustment(fin2, db.session.get(Adjustment, ids[1]), "the override was right")
    with world.app_context():
        rejected = db.session.get(Adjustment, ids[1])
        assert rejected.status == "rejected" and rejected.entry_position is None
        assert rejected.decision_reason == "the override was right"
        positions = db.session.scalars(select(LedgerEntry.position).where(LedgerEntry.kind == "adjustment")).all()
        assert positions == [position]  # only the approved one is money


def test_a_finance_user_never_approves_an_adjustment_to_their_own_money(world):
    """Rule check on the decision itself, whatever the beneficiary's role."""
    from crm.finance import services
    from crm.finance.models import Adjustment

    with world.app_context():
        fin1, fin2 = _users(world, "fin1", "fin2")
        fake = Adjustment(id=999, beneficiary_id=fin2.id, amount=100, reason="x", author_id=fin1.id,
                          author_label="fin1", status="proposed")
        with pytest.raises(Forbidden) as refused:
            services.approve_adjustment(fin2, fake)
        assert refused.value.code == "own_money"


def test_adjustment_pages_show_the_queue_and_refuse_bad_input(world, clock):
    client = world.test_client()
    login(client, "sup1")
    assert client.get("/finance/adjustments").status_code == 200
    r = post(client, "/finance/adjustments", {"beneficiary": "agent1", "amount": "12.345", "reason": "x"},
             token_from="/finance/adjustments")
    assert r.status_code == 422
    r = post(client, "/finance/adjustments", {"beneficiary": "agent5", "amount": "100.00", "reason": "x"},
             token_from="/finance/adjustments")
    assert r.status_code == 422  # another team's agent: not in sup1's scope
    r = post(client, "/finance/adjustments", {"beneficiary": "agent1", "amount": "-100.50", "reason": "typo fix"},
             token_from="/finance/adjustments")
    assert r.status_code == 302
    fin = world.test_client()
    login(fin, "fin1")
    page = fin.get("/finance/adjustments").get_data(as_text=True)
    assert "typo fix" in page and "-100.50" in page
    with world.app_context():
        from crm.extensions import db
        from crm.finance.models import Adjustment

        adjustment_id = db.session.scalar(select(Adjustment.id))
    r = post(fin, f"/finance/adjustments/{adjustment_id}/approve", token_from="/finance/adjustments")
    assert r.status_code == 302
    with world.app_context():
        assert db.session.get(Adjustment, adjustment_id).status == "approved"
    agent = world.test_client()
    login(agent, "agent1")
    assert agent.get("/finance/adjustments").status_code == 403
    assert post(agent, f"/finance/adjustments/{adjustment_id}/approve").status_code == 403


# --- disputes --------------------------------------------------------------------------


def test_disputes_are_seen_by_the_agent_their_chain_of_command_and_finance_only(world, clock):
    number = sign(world, clock)
    agent = world.test_client()
    login(agent, "agent1")
    r = post(agent, "/finance/disputes", {"text": "I signed flat 57 in b2 and it is not here"},
             token_from="/finance/disputes")
    assert r.status_code == 302
    dispute_url = r.headers["Location"]
    r = post(agent, "/finance/disputes", {"text": "wrong amount", "contract": number}, token_from="/finance/disputes")
    assert r.status_code == 302
    assert post(agent, "/finance/disputes", {"text": ""}, token_from="/finance/disputes").status_code == 422
    other = world.test_client()
    login(other, "agent5")
    assert post(other, "/finance/disputes", {"text": "mine?", "contract": number},
                token_from="/finance/disputes").status_code == 422  # not agent5's contract

    expected = {"agent1": 200, "sup1": 200, "head": 200, "fin1": 200, "fin2": 200,
                "agent2": 404, "agent5": 404, "sup2": 404, "admin": 403}
    seen = {}
    for who in expected:
        c = world.test_client()
        login(c, who)
        seen[who] = c.get(dispute_url).status_code
        if who in ("sup2", "agent2"):
            assert "flat 57" not in c.get("/finance/disputes").get_data(as_text=True)
    assert seen == expected

    sup = world.test_client()
    login(sup, "sup1")
    assert post(sup, dispute_url, {"text": "Checking with the installer"}, token_from=dispute_url).status_code == 302
    thread = agent.get(dispute_url).get_data(as_text=True)
    assert "Checking with the installer" in thread and "flat 57" in thread
    # sup1 proposes an adjustment from the dispute; fin2 approves it; the dispute is resolved
    dispute_id = int(dispute_url.rsplit("/", 1)[1])
    r = post(sup, "/finance/adjustments", {"beneficiary": "agent1", "amount": "1500.00", "reason": "flat 57",
                                           "dispute_id": str(dispute_id)}, token_from="/finance/adjustments")
    assert r.status_code == 302
    with world.app_context():
        from crm.extensions import db
        from crm.finance.models import Adjustment, Dispute

        adjustment_id = db.session.scalar(select(Adjustment.id).where(Adjustment.dispute_id == dispute_id))
    fin = world.test_client()
    login(fin, "fin2")
    assert post(fin, f"/finance/adjustments/{adjustment_id}/approve", token_from="/finance/adjustments").status_code == 302
    with world.app_context():
        dispute = db.session.get(Dispute, dispute_id)
        assert dispute.status == "resolved" and f"#{adjustment_id}" in dispute.resolution
    # the other dispute is rejected with a reason the agent reads
    second = dispute_id + 1
    assert post(agent, f"/finance/disputes/{second}/reject", {"reason": "no"},
                token_from=f"/finance/disputes/{second}").status_code == 403
    assert post(sup, f"/finance/disputes/{second}/reject", {"reason": "The amount follows rates v1"},
                token_from=f"/finance/disputes/{second}").status_code == 302
    page = agent.get(f"/finance/disputes/{second}").get_data(as_text=True)
    assert "The amount follows rates v1" in page
    with world.app_context():
        assert db.session.get(Dispute, second).status == "rejected"
    inbox = agent.get("/inbox").get_data(as_text=True)
    assert "resolved" in inbox or "решён" in inbox


# --- the whole month: export = independent computation, payouts, carried debts ------------


def test_export_equals_an_independent_computation_and_payouts_carry_debts(world, clock, tmp_path):
    x_net100, x_combo = AMOUNT["net100"], AMOUNT["net300"] + AMOUNT["tv"]
    clock.set(nov(20))
    c1 = sign(world, clock, agent="agent1", flat=1)
    c2 = sign(world, clock, agent="agent2", flat=2, tariff="net300", addons=["tv"])
    c3 = sign(world, clock, agent="agent2", flat=3)
    c4 = sign(world, clock, agent="agent1", flat=4)
    c5 = sign(world, clock, agent="agent5", flat=5, building="b2")
    clock.set(nov(27))
    event(world, c1, "activated", nov(21))
    event(world, c2, "activated", nov(22))
    event(world, c3, "cancelled", nov(23))  # before activation: void, nothing payable
    event(world, c4, "activated", nov(21))
    event(world, c4, "cancelled", nov(24))  # inside the window: claw back
    event(world, c5, "activated", nov(25))
    from crm.finance import services

    with operator(world):
        sup1, agent2 = _users(world, "sup1", "agent2")
        adjustment_id = services.propose_adjustment(sup1, beneficiary=agent2, amount=500000, reason="flat 57").id
    with operator(world):
        from crm.finance.models import Adjustment

        services.approve_adjustment(_users(world, "fin2")[0], db_get(Adjustment, adjustment_id))

    expected = {  # login: accruals_earned, overrides_earned, bonuses, adjustments, clawbacks
        "agent1": (2 * x_net100, 0, 0, 0, -x_net100),
        "agent2": (x_combo, 0, 0, 500000, 0),
        "agent5": (x_net100, 0, 0, 0, 0),
        "sup1": (0, override(x_net100) * 2 + override(x_combo), 0, 0, -override(x_net100)),
        "sup2": (0, override(x_net100), 0, 0, 0),
    }
    clock.set(datetime(2026, 12, 2, 5, tzinfo=UTC))
    code, out = run(world, "finance", "close", "--period", "2026-11")
    assert code == 0 and out.startswith("closed 2026-11: 5 beneficiaries, head ")
    head = out.strip().rsplit(" ", 1)[1]

    csv_path, xlsx_path = str(tmp_path / "nov.csv"), str(tmp_path / "nov.xlsx")
    assert run(world, "finance", "export", "--period", "2026-11", "--format", "csv", "--out", csv_path) == \
        (0, f"exported 2026-11 to {csv_path}\n")
    assert run(world, "finance", "export", "--period", "2026-11", "--format", "xlsx", "--out", xlsx_path)[0] == 0
    with open(csv_path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert lines[0].startswith("# period=2026-11 generated=") and lines[0].endswith(f" ledger_head={head}")
    assert lines[1] == HEADER
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    got = {r["login"]: tuple(r[k] for k in ("accruals_earned", "overrides_earned", "bonuses", "adjustments",
                                            "clawbacks", "net")) for r in rows}
    want = {login: tuple(money(v) for v in figures) + (money(sum(figures)),) for login, figures in expected.items()}
    assert got == want
    by_login = {r["login"]: r for r in rows}
    assert by_login["agent1"]["supervisor"] == "sup1" and by_login["agent1"]["role"] == "agent"
    assert by_login["agent1"]["personnel_number"] == "D-0005" and by_login["agent1"]["currency"] == "RUB"
    assert by_login["sup1"]["supervisor"] == ""

    book = load_workbook(xlsx_path, read_only=True)
    assert book.sheetnames == ["payout", "about"]
    sheet_rows = [[("" if v is None else str(v)) for v in row] for row in book["payout"].iter_rows(values_only=True)]
    assert sheet_rows[0] == HEADER.split(",")
    assert sheet_rows[1:] == [list(r.values()) for r in rows]  # the same rows as the CSV
    about = {k: v for k, v in book["about"].iter_rows(values_only=True)}
    assert about["period"] == "2026-11" and about["ledger_head"] == head

    # agent1's statement shows the same figures and the head stored at close
    agent = world.test_client()
    login(agent, "agent1")
    page = agent.get("/statement?period=2026-11").get_data(as_text=True)
    assert head in page and money(sum(expected["agent1"])) in page and c4 in page

    code, out = run(world, "finance", "record-payout", "--period", "2026-11")
    assert (code, out) == (0, "recorded payout 2026-11: 5 entries\n")
    code, out = run(world, "finance", "record-payout", "--period", "2026-11")
    assert code == 1 and out.startswith("refused:")
    # exporting again: same figures, same head (the one stored at close, though the ledger grew)
    assert run(world, "finance", "export", "--period", "2026-11", "--format", "csv", "--out", csv_path)[0] == 0
    with open(csv_path, encoding="utf-8") as fh:
        again = fh.read().splitlines()
    assert again[1:] == lines[1:] and again[0].endswith(f" ledger_head={head}")
    with world.app_context():
        from crm.ledger import services as ledger

        assert ledger.head()[0] == int(head.split(":")[0]) + 5
        payouts = {e.beneficiary.login: e.amount for e in db_session().scalars(
            select(ledger.LedgerEntry).where(ledger.LedgerEntry.kind == "payout"))}
    assert payouts == {login: -sum(f) for login, f in expected.items()}

    # December: c1 is cancelled inside the window → agent1 and sup1 owe money
    clock.set(datetime(2026, 12, 3, 6, tzinfo=UTC))
    event(world, c1, "cancelled", clock.now())
    clock.set(datetime(2027, 1, 2, 6, tzinfo=UTC))
    assert run(world, "finance", "close", "--period", "2026-12")[0] == 0
    code, out = run(world, "finance", "record-payout", "--period", "2026-12")
    assert (code, out) == (0, "recorded payout 2026-12: 0 entries\n")  # negative nets: carried, no entry
    c6 = sign(world, clock, agent="agent1", flat=6)
    clock.advance(days=1)
    event(world, c6, "activated", clock.now())
    clock.set(datetime(2027, 2, 2, 6, tzinfo=UTC))
    assert run(world, "finance", "close", "--period", "2027-01")[0] == 0
    with world.app_context():
        from crm.finance.models import PeriodSnapshot

        jan = {s.login: (s.opening, s.accruals_earned, s.net)
               for s in db_session().scalars(select(PeriodSnapshot).where(PeriodSnapshot.period == "2027-01"))}
    assert jan["agent1"] == (-x_net100, x_net100, 0)
    assert jan["sup1"][0] == -override(x_net100)
    assert "agent2" not in jan  # paid in full, nothing since: no row


def db_session():
    from crm.extensions import db

    return db.session


def db_get(model, key):
    return db_session().get(model, key)


def test_a_payout_is_refused_once_a_later_period_is_closed(world, clock):
    number = sign(world, clock)
    event(world, number, "activated", clock.now())
    clock.set(datetime(2027, 1, 2, tzinfo=UTC))
    assert run(world, "finance", "close", "--period", "2026-11")[0] == 0
    assert run(world, "finance", "close", "--period", "2026-12")[0] == 0
    code, out = run(world, "finance", "record-payout", "--period", "2026-11")
    assert code == 1 and "2026-12" in out  # December's net already carries November's: pay that instead
    assert run(world, "finance", "record-payout", "--period", "2027-01")[0] == 1  # not closed
    assert run(world, "finance", "record-payout", "--period", "2026-12") == (0, "recorded payout 2026-12: 2 entries\n")


# --- pages and scope -------------------------------------------------------------------


@pytest.fixture
def closed_world(world, clock):
    a = sign(world, clock, agent="agent1", flat=1)
    b = sign(world, clock, agent="agent5", flat=2)
    clock.advance(hours=1)
    event(world, a, "activated", clock.now())
    event(world, b, "activated", clock.now())
    clock.set(datetime(2026, 12, 2, 5, tzinfo=UTC))
    assert run(world, "finance", "close", "--period", "2026-11")[0] == 0
    return world


def _export_logins(client, fmt="csv"):
    r = client.get(f"/finance/periods/2026-11/export.{fmt}")
    if r.status_code != 200:
        return r.status_code
    if fmt == "xlsx":
        book = load_workbook(io.BytesIO(r.data), read_only=True)
        return sorted(row[2] for row in list(book["payout"].iter_rows(values_only=True))[1:])
    lines = r.get_data(as_text=True).splitlines()
    return sorted(row["login"] for row in csv.DictReader(io.StringIO("\n".join(lines[1:]))))


def test_exports_never_include_money_outside_the_users_scope(closed_world):
    expected = {"fin1": ["agent1", "agent5", "sup1", "sup2"], "head": ["agent1", "agent5", "sup1", "sup2"],
                "sup1": ["agent1", "sup1"], "sup2": ["agent5", "sup2"], "agent1": 403, "admin": 403}
    for who, want in expected.items():
        client = closed_world.test_client()
        login(client, who)
        assert _export_logins(client) == want, who
        assert _export_logins(client, "xlsx") == want, who
    client = closed_world.test_client()
    login(client, "fin1")
    assert client.get("/finance/periods/2026-10/export.csv").status_code == 404  # never closed
    assert client.get("/finance/periods/2026-11/export.pdf").status_code == 404
    with closed_world.app_context():
        from crm.audit.models import AuditEvent

        actions = db_session().scalars(select(AuditEvent.action).where(AuditEvent.action == "period.export")).all()
    assert len(actions) == 4 * 2  # four people may export, in two formats; the refused ones leave no trace


def test_finance_page_closes_and_records_and_others_cannot(world, clock):
    number = sign(world, clock)
    event(world, number, "activated", clock.now())
    clock.set(datetime(2026, 12, 2, 5, tzinfo=UTC))
    for who in ("sup1", "head"):
        c = world.test_client()
        login(c, who)
        assert c.get("/finance").status_code == 200
        assert post(c, "/finance/periods/2026-11/close", token_from="/finance").status_code == 403
    for who in ("agent1", "admin"):
        c = world.test_client()
        login(c, who)
        assert c.get("/finance").status_code == 403
    fin = world.test_client()
    login(fin, "fin1")
    page = fin.get("/finance").get_data(as_text=True)
    assert "2026-11" in page and "/finance/periods/2026-11/close" in page
    assert fin.post("/finance/periods/2026-11/close").status_code == 400  # no CSRF token
    r = post(fin, "/finance/periods/2026-11/close", token_from="/finance")
    assert r.status_code == 302 and r.headers["Location"].endswith("/finance/periods/2026-11")
    page = fin.get("/finance/periods/2026-11").get_data(as_text=True)
    assert "agent1" in page
    r = post(fin, "/finance/periods/2026-11/close", token_from="/finance", follow_redirects=True)
    assert "already closed" in r.get_data(as_text=True) or "уже закрыт" in r.get_data(as_text=True)
    assert post(fin, "/finance/periods/2026-11/payout", token_from="/finance").status_code == 302
    assert run(world, "finance", "record-payout", "--period", "2026-11")[0] == 1


def test_statements_are_private_and_agree_with_the_entries(closed_world, clock):
    agent = closed_world.test_client()
    login(agent, "agent1")
    page = agent.get("/statement?period=2026-11").get_data(as_text=True)
    assert money(AMOUNT["net100"]) in page and 'id="statement-head"' in page
    other = user_id(closed_world, "agent5")
    assert agent.get(f"/statement?user={other}&period=2026-11").status_code == 404
    assert agent.get("/statement?period=garbage").status_code == 404
    sup = closed_world.test_client()
    login(sup, "sup1")
    assert sup.get(f"/statement?user={user_id(closed_world, 'agent1')}&period=2026-11").status_code == 200
    assert sup.get(f"/statement?user={other}&period=2026-11").status_code == 404
    history = agent.get("/me/history").get_data(as_text=True)
    assert "contract.activated" in history and "contract.sign" in history
    assert sup.get("/me/history").status_code == 200
    with closed_world.app_context():  # the statement's sums are the snapshot's
        from crm.finance import services
        from crm.finance.models import PeriodSnapshot

        for snap in db_session().scalars(select(PeriodSnapshot)):
            figures = services.statement(snap.beneficiary, "2026-11").figures
            assert (figures.opening, figures.accruals_earned, figures.overrides_earned, figures.net, figures.pending) \
                == (snap.opening, snap.accruals_earned, snap.overrides_earned, snap.net, snap.pending)


def test_an_export_that_cannot_be_written_is_refused_and_not_audited(closed_world, tmp_path):
    code, out = run(closed_world, "finance", "export", "--period", "2026-11", "--format", "csv",
                    "--out", str(tmp_path / "missing" / "nov.csv"))
    assert code == 1 and out.startswith("refused: cannot write")
    assert not [p for p in tmp_path.rglob("*") if "nov" in p.name]  # no half-written file left behind
    with closed_world.app_context():
        from crm.audit.models import AuditEvent

        assert db_session().scalars(select(AuditEvent).where(AuditEvent.action == "period.export")).all() == []
    assert run(closed_world, "finance", "export", "--period", "2026-11", "--format", "xlsx",
               "--out", str(tmp_path / "nov.xlsx"))[0] == 0
    with closed_world.app_context():
        assert len(db_session().scalars(select(AuditEvent).where(AuditEvent.action == "period.export")).all()) == 1
