"""Contract events per second: the raw-driver floor (b) against the project's services (c).

    .venv/bin/python bench/ledger_events.py [--db sqlite|postgresql] [--events 20000] [--seed 1]

One schedule of events (signings; ~60 % of contracts activated; ~20 % cancelled, half of
them before activation (voids), half after (clawbacks inside the 60-day window, nothing
outside it)) is played twice, each event in its own transaction, on two fresh copies of
the same migrated database (demo users, catalogue, one rate version, buildings):

(b) floor: the raw driver inserts the event's 1–4 ledger rows straight into
    ``ledger_entries`` (its triggers run), positions/prev_hash/hash computed inline with
    ``crm.chain.canonical``/``link_hash``; no ORM, no validation, no contract or audit rows.
(c) services: ``crm.contracts.services.sign`` / ``apply_event`` in an app context as the
    operator (a fresh app context per event, like a request or a CLI command), one commit.

Both write the same ledger rows, so the two chain heads must be identical.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)

SPAN_DAYS = 180
NAMES = ["Иван Петров", "Мария Смирнова", "Алексей Кузнецов", "Ольга Попова", "Дмитрий Васильев",
         "Елена Соколова", "Павел Михайлов", "Татьяна Новикова"]
REASONS = ["moved out", "found a cheaper provider", "unhappy with installation", "changed their mind"]


@dataclass
class Contract:
    agent_id: int
    supervisor_id: int | None
    tariff: str
    addons: tuple[str, ...]
    x: int  # agent amount
    o: int  # supervisor override
    phone: str
    name: str
    reason: str
    signed_at: datetime
    activated_at: datetime | None = None
    id: int = 0
    number: str = ""
    building_id: int = 0
    flat: int = 0


@dataclass
class Event:
    at: datetime
    kind: str  # signed, activated, cancelled
    contract: Contract


def make_plan(n_events: int, facts: dict, seed: int) -> tuple[list[Event], list[Contract]]:
    from crm.ledger import commission

    rng = Random(seed)
    n = 1
    while n + round(0.6 * n) + round(0.2 * n) < n_events:
        n += 1
    n_act, n_cancel = round(0.6 * n), round(0.2 * n)
    order = list(range(n))
    rng.shuffle(order)
    activated = set(order[:n_act])
    cancel_after = set(order[:n_cancel // 2])                                  # activated, then cancelled
    cancel_before = set(order[n_act:n_act + n_cancel - n_cancel // 2])        # cancelled before activation
    amounts = {**common.RATES["agent"]["tariffs"], **common.RATES["agent"]["addons"]}
    override_bp = commission.percent_to_bp(common.RATES["supervisor_override_percent"])
    t0 = common.T0 + timedelta(hours=1)

    events = []
    for i in range(n):
        agent_id, supervisor_id = rng.choice(facts["agents"])
        tariff = rng.choices(["net100", "net300", "net500"], weights=[5, 3, 2])[0]
        addons = tuple(a for a in ("tv", "phone") if rng.random() < 0.3)
        x = sum(amounts[c] for c in (tariff, *addons))
        c = Contract(agent_id, supervisor_id, tariff, addons, x, commission.override_amount(x, override_bp),
                     phone=f"8 (912) {rng.randrange(200, 999)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}",
                     name=rng.choice(NAMES), reason=rng.choice(REASONS),
                     signed_at=t0 + timedelta(seconds=rng.uniform(0, SPAN_DAYS * 86400)))
        events.append(Event(c.signed_at, "signed", c))
        if i in activated:
            c.activated_at = c.signed_at + timedelta(seconds=rng.uniform(1 * 86400, 20 * 86400))
            events.append(Event(c.activated_at, "activated", c))
            if i in cancel_after:
                events.append(Event(c.activated_at + timedelta(seconds=rng.uniform(5 * 86400, 100 * 86400)),
                                    "cancelled", c))
        elif i in cancel_before:
            events.append(Event(c.signed_at + timedelta(seconds=rng.uniform(3600, 15 * 86400)), "cancelled", c))
    events.sort(key=lambda e: e.at)
    events = events[:n_events]

    contracts = []
    for e in events:  # ids in signing order, as the database hands them out
        if e.kind == "signed":
            c = e.contract
            c.id = len(contracts) + 1
            c.number = f"D-{common.month_of(c.signed_at)[:4]}-{c.id:06d}"
            c.building_id = facts["buildings"][(c.id - 1) // common.APARTMENTS]
            c.flat = (c.id - 1) % common.APARTMENTS + 1
            contracts.append(c)
    return events, contracts


def event_specs(e: Event, clawback_days: int, state: dict) -> list[tuple]:
    """The ledger rows an event writes: (key, kind, bucket, beneficiary, amount, ref_position, reason).

    Mirrors crm.ledger.commission; ``state`` maps keys of rows already written to positions.
    """
    c, n = e.contract, e.contract.number
    people = [(c.agent_id, c.x, "accrual")] + ([(c.supervisor_id, c.o, "override")] if c.supervisor_id else [])
    if e.kind == "signed":
        return [(f"{k}:{n}:{b}", k, "pending", b, amt, None, None) for b, amt, k in people]
    if e.kind == "activated":
        out = []
        for b, amt, k in people:
            ref = state[f"{k}:{n}:{b}"]
            out.append((f"release:{n}:{b}", "release", "pending", b, -amt, ref, None))
            out.append((f"earned:{n}:{b}", "earned", "payable", b, amt, ref, None))
        return out
    if c.activated_at is None or c.activated_at > e.at:  # cancelled before activation: void the accruals
        return [(f"void:{n}:{b}", "void", "pending", b, -amt, state[f"{k}:{n}:{b}"], c.reason) for b, amt, k in people]
    if e.at - c.activated_at <= timedelta(days=clawback_days):
        return [(f"clawback:{n}:{b}", "clawback", "payable", b, -amt, state[f"earned:{n}:{b}"], c.reason)
                for b, amt, _k in people]
    return []


# --- (b) the floor -------------------------------------------------------------------


def run_floor(dbs, url: str, events: list[Event], rate_version_id: int) -> dict:
    from crm.chain import ZERO_HASH, canonical, link_hash

    dialect = dbs.dialect
    dt = common.sqlite_dt if dialect == "sqlite" else common.pg_dt
    sql = common.insert_sql(dialect, "ledger_entries", common.LEDGER_COLUMNS)
    clawback_days = common.RATES["clawback_days"]
    conn = dbs.raw_connect(url)
    cur = conn.cursor()
    position, prev, state = 0, ZERO_HASH, {}
    transactions, per_kind = 0, defaultdict(float)
    started = time.perf_counter()
    for e in events:
        t = time.perf_counter()
        specs = event_specs(e, clawback_days, state)
        if specs:
            period, at = common.month_of(e.at), e.at
            rows = []
            for key, kind, bucket, beneficiary, amount, ref, reason in specs:
                position += 1
                values = {"kind": kind, "bucket": bucket, "beneficiary_id": beneficiary,
                          "contract_id": e.contract.id, "rate_version_id": rate_version_id, "amount": amount,
                          "at": at, "recorded_at": at, "period": period, "corrects_period": None,
                          "actor_id": None, "actor_label": "cli", "reason": reason, "ref_position": ref}
                digest = link_hash(prev, canonical(position, key, values))
                rows.append((position, key, prev, digest, kind, bucket, beneficiary, e.contract.id, rate_version_id,
                             amount, dt(at), dt(at), period, None, None, "cli", reason, ref))
                state[key] = position
                prev = digest
            common.begin(dialect, cur)
            cur.executemany(sql, rows)
            common.commit(dialect, conn, cur)
            transactions += 1
        per_kind[e.kind] += time.perf_counter() - t
    elapsed = time.perf_counter() - started
    conn.close()
    return {"seconds": elapsed, "entries": position, "transactions": transactions, "per_kind": per_kind}


# --- (c) the services ----------------------------------------------------------------


def run_services(url: str, events: list[Event]) -> dict:
    from sqlalchemy import event as sa_event

    from crm.actors import CLI, set_actor
    from crm.clock import FixedClock
    from crm.contracts import services
    from crm.contracts.models import Contract as ContractRow
    from crm.extensions import db
    from crm.users.models import User
    from territories.models import Building

    clock = FixedClock(common.T0)
    app = common.make_app(url, clock)
    statements = [0]
    with app.app_context():
        sa_event.listen(db.engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))
    transactions, per_kind = 0, defaultdict(float)
    started = time.perf_counter()
    for e in events:
        t = time.perf_counter()
        clock.set(e.at)
        c = e.contract
        with app.app_context():
            set_actor(CLI)
            if e.kind == "signed":
                contract, created = services.sign(
                    None, agent=db.session.get(User, c.agent_id), building=db.session.get(Building, c.building_id),
                    flat=c.flat, subscriber_name=c.name, phone=c.phone, tariff_code=c.tariff,
                    addon_codes=list(c.addons), adult_confirmed=True, at=e.at)
                assert created and contract.id == c.id and contract.number == c.number, (contract.number, c.number)
            else:
                contract = db.session.get(ContractRow, c.id)
                services.apply_event(contract, event=e.kind, at=e.at,
                                     reason=c.reason if e.kind == "cancelled" else None,
                                     event_key=f"bench:{c.number}:{e.kind}")
            db.session.commit()
            transactions += 1
        per_kind[e.kind] += time.perf_counter() - t
    elapsed = time.perf_counter() - started
    common.dispose(app)
    return {"seconds": elapsed, "transactions": transactions, "per_kind": per_kind, "statements": statements[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with common.databases(args.db, "events") as dbs:
        t = time.perf_counter()
        n_contracts_max = math.ceil(args.events / 1.8) + 1
        buildings = math.ceil(n_contracts_max / common.APARTMENTS) + 1
        template = dbs.create_empty("tpl")
        common.build_world(template, buildings)
        facts = common.world_facts(template)
        events, contracts = make_plan(args.events, facts, args.seed)
        floor_url, services_url = dbs.copy(template, "floor"), dbs.copy(template, "services")
        common.insert_contracts(dbs, floor_url, [
            {"id": c.id, "number": c.number, "agent_id": c.agent_id, "supervisor_id": c.supervisor_id,
             "building_id": c.building_id, "flat": c.flat, "tariff_id": facts["tariffs"][c.tariff][0],
             "monthly_fee": 0, "at": c.signed_at, "rate_version_id": facts["rate_version_id"]} for c in contracts])
        setup = time.perf_counter() - t

        kinds = Counter(e.kind for e in events)
        before = sum(1 for e in events if e.kind == "cancelled"
                     and (e.contract.activated_at is None or e.contract.activated_at > e.at))
        print(f"ledger_events on {args.db}: {len(events):,} events = {kinds['signed']:,} signings, "
              f"{kinds['activated']:,} activations, {kinds['cancelled']:,} cancellations "
              f"({before:,} before activation, {kinds['cancelled'] - before:,} after); "
              f"each event in its own transaction (set-up {setup:.1f} s, not measured); code {common.revision()}; "
              f"{common.load()}")

        floor = run_floor(dbs, floor_url, events, facts["rate_version_id"])
        svc = run_services(services_url, events)

        checks_b = common.verify_chains(floor_url, ("ledger",))
        checks_c = common.verify_chains(services_url, ("ledger", "audit"))

    fb, fc = len(events) / floor["seconds"], len(events) / svc["seconds"]
    entries = checks_c["ledger"].count
    print(f"(b) floor, raw {'sqlite3' if args.db == 'sqlite' else 'psycopg'}: {floor['seconds']:8.2f} s  "
          f"{fb:9,.0f} events/s  {floor['entries']:,} ledger entries ({common.rate(floor['entries'], floor['seconds'])}"
          f" entries/s) in {floor['transactions']:,} transactions")
    print(f"(c) services:        {svc['seconds']:8.2f} s  {fc:9,.0f} events/s  {entries:,} ledger entries "
          f"({common.rate(entries, svc['seconds'])} entries/s) in {svc['transactions']:,} transactions, "
          f"{svc['statements'] / len(events):.1f} SQL statements per event")
    for kind in ("signed", "activated", "cancelled"):
        if kinds[kind]:
            b_ms = floor["per_kind"][kind] / kinds[kind] * 1000
            c_ms = svc["per_kind"][kind] / kinds[kind] * 1000
            print(f"    {kind:<10} {kinds[kind]:6,} events: (b) {b_ms:6.3f} ms/event   (c) {c_ms:6.3f} ms/event")
    ratio = fc / fb
    print(f"ratio c/b: {ratio:.3f} (target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'})")
    print(f"verify (b): {checks_b['ledger'].line('ledger')}")
    print(f"verify (c): {checks_c['ledger'].line('ledger')}")
    print(f"verify (c): {checks_c['audit'].line('audit')}")
    same = (checks_b["ledger"].head_position, checks_b["ledger"].head_hash) == \
           (checks_c["ledger"].head_position, checks_c["ledger"].head_hash)
    print(f"(b) and (c) wrote the same ledger (identical chain heads): {'yes' if same else 'NO'}")
    print(f"at the end: {common.load()}")
    ok = all(r.ok for r in (*checks_b.values(), *checks_c.values())) and same and floor["entries"] == entries
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
