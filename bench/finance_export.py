"""Closing a month of a million ledger entries and exporting its payout CSV: time and peak RSS.

    .venv/bin/python bench/finance_export.py [--db sqlite|postgresql] [--entries 1000000] [--beneficiaries 5000]

Target (the issue): the CSV export of a closed period of 1,000,000 entries over 5,000
beneficiaries grows the exporting process's peak RSS by at most 100 MB. The close is timed
too: it is where the period's entries are actually read (``period_figures`` sums them into
one ``PeriodSnapshot`` per beneficiary; the export only reads the snapshots).

Set-up, not measured: a throwaway migrated database (``_common.build_world``: demo people,
catalogue, one rate version, no buildings), ``--beneficiaries`` users inserted raw (one
supervisor per ten, each under the demo sales head ``head``, the agents spread over the
supervisors; real password hashes, personnel numbers), then ``--entries`` hash-chained ledger
entries, all in October 2026 (company time zone), written with the raw driver by
``ledger_verify.fill_ledger`` (in position order, one transaction, through the insert-guard
triggers): signings (accrual for the agent, override for the supervisor, both pending),
activations (release −, pending, and earned +, payable, both referring to the accrual or
override), voids (pending −) and clawbacks (payable −, referring to the earned entry).
``contract_id`` is NULL on every entry (no contract rows are built; the close's bonus query
over contracts therefore finds none and writes no bonus entries).

Measured as subprocesses of the real CLI (``DATABASE_URL`` = the bench database, the real
clock, so October is finished), each with its own wall time and peak RSS (``ru_maxrss`` from
``os.wait4`` in a small launcher process, see LAUNCHER):

* ``flask --app app finance close --period 2026-10``, next to a refused close
  (``--period`` of the current, unfinished month) as the baseline: the same start-up,
  connection and chain lock, no work;
* ``flask --app app finance export --period 2026-10 --format csv --out FILE`` (``--repeat``
  times), next to a refused export of a period that is not closed as the baseline.

Growth = peak RSS of the run − peak RSS of its baseline. Checked: both commands exit 0; the
close's head equals the head of the ledger as built; the CSV's first line is the
``# period=2026-10 …`` line ending with that head; then the fixed header; one row per
beneficiary with an entry in the period, sorted by login; each row's figures (accruals and
overrides earned, bonuses, adjustments, clawbacks, net) equal to independent raw SQL sums over
``ledger_entries``, and the net column's total equal to the SQL sum of the period's payable
entries; ``flask ledger verify --expect HEAD`` and ``flask ledger verify --audit`` exit 0.
Exit status 1 if a check fails (a missed target alone does not fail the run).
"""
from __future__ import annotations

import argparse
import csv
import itertools
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from random import Random

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)
import ledger_verify  # noqa: E402  (fill_ledger, flask_command)

PERIOD = "2026-10"
TARGET_MB = 100  # 1 MB = 10**6 bytes
FIRST_NAMES = ["Иван", "Алексей", "Дмитрий", "Сергей", "Андрей", "Мария", "Анна", "Елена", "Ольга", "Наталья",
               "Павел", "Кирилл", "Тимур", "Алина", "Ксения", "Роман", "Виктор", "Галина", "Юлия", "Артём"]
LAST_NAMES = ["Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов", "Михайлов",
              "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов"]
FEMALE = {"Мария", "Анна", "Елена", "Ольга", "Наталья", "Алина", "Ксения", "Галина", "Юлия"}
REASONS = ["переезд", "передумал", "нашёл дешевле у конкурента", "не устроило время подключения"]


def mib(kib: int) -> str:
    return f"{kib / 1024:,.1f} MiB ({kib * 1024 / 1e6:,.1f} MB)"


# --- set-up --------------------------------------------------------------------------


def insert_people(dbs, url: str, beneficiaries: int, supervisors: int, head_id: int) -> tuple[list, dict]:
    """Raw-insert ``supervisors`` supervisors under the sales head and the rest as agents spread
    over them. Returns [(agent_id, supervisor_id)] and {id: (login, personnel_number, role, supervisor_login)}."""
    from werkzeug.security import generate_password_hash

    rng = Random(7)
    password_hash = generate_password_hash("bench-password", method=common.FAST_HASH)  # valid, computed once
    dt = common.sqlite_dt if dbs.dialect == "sqlite" else common.pg_dt
    created = dt(common.T0)
    conn = dbs.raw_connect(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT MAX(id) FROM users")
        first = (cur.fetchone()[0] or 0) + 1
        columns = ("id", "login", "name", "role", "manager_id", "personnel_number", "password_hash",
                   "must_change_password", "active", "locale", "session_token", "created_at", "deactivated_at")
        rows, people, agents = [], {}, []
        sup_ids = list(range(first, first + supervisors))
        for n in range(beneficiaries):
            uid = first + n
            if n < supervisors:
                role, manager, login = "supervisor", head_id, f"sup{n + 1:04d}"
            else:
                role, manager, login = "agent", sup_ids[(n - supervisors) % supervisors], f"agent{n - supervisors + 1:05d}"
            first_name = rng.choice(FIRST_NAMES)
            name = f"{first_name} {rng.choice(LAST_NAMES)}{'а' if first_name in FEMALE else ''}"
            number = f"B-{n + 1:06d}"
            rows.append((uid, login, name, role, manager, number, password_hash, False, True, None,
                         os.urandom(8).hex(), created, None))
            # supervisors come first, so an agent's supervisor is already known
            people[uid] = (login, number, role, people[manager][0] if role == "agent" else None)
            if role == "agent":
                agents.append((uid, manager))
        common.begin(dbs.dialect, cur)
        cur.executemany(common.insert_sql(dbs.dialect, "users", columns), rows)
        if dbs.dialect == "postgresql":
            cur.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT MAX(id) FROM users))")
        common.commit(dbs.dialect, conn, cur)
    finally:
        conn.close()
    return agents, people


def period_rows(n: int, agents: list, logins: dict, rate_version_id: int, seed: int, dialect: str, out: dict):
    """Yield ``n`` chained rows (LEDGER_COLUMNS order), every one of them in PERIOD.

    Events, each of its rows with the same business time: signing (accrual + override),
    activation (release + earned per accrual), void (per accrual), clawback (per earned). Agents
    sign in turn (a fresh shuffle every round); about 18 % of the entries are accruals, so with
    n ≥ ~5.6 × agents (25,000 for 4,500) every agent and supervisor has entries.
    Exactly ``n`` rows: no activation (4 rows) when fewer than 4 are left, and the caller cuts an
    odd ``n`` (itertools.islice). ``out["state"]`` holds the head so far, ``out["kinds"]`` the
    count of each kind."""
    from crm.chain import ZERO_HASH, canonical, link_hash
    from crm.finance import core
    from crm.ledger import commission

    rng = Random(seed)
    dt = common.sqlite_dt if dialect == "sqlite" else common.pg_dt
    amounts = {**common.RATES["agent"]["tariffs"], **common.RATES["agent"]["addons"]}
    override_bp = commission.percent_to_bp(common.RATES["supervisor_override_percent"])
    start, end = core.bounds(PERIOD, common.COMPANY_TZ)
    span = end - start
    state = {"position": 0, "prev": ZERO_HASH, "contracts": 0}
    kinds: dict[str, int] = {}
    out["state"], out["kinds"] = state, kinds
    signed, activated = [], []  # (number, [(beneficiary, amount, ref_position)])
    turn: list = []

    def event_time():
        at = start + span * ((state["position"] + rng.random()) / n)
        at = min(at, end - timedelta(seconds=5)).replace(microsecond=rng.randrange(10**6))
        return at, at + timedelta(seconds=rng.uniform(0.05, 3.0))

    def row(key, kind, bucket, beneficiary, amount, at, recorded, actor, reason=None, ref=None):
        position = state["position"] + 1
        values = {"kind": kind, "bucket": bucket, "beneficiary_id": beneficiary, "contract_id": None,
                  "rate_version_id": rate_version_id, "amount": amount, "at": at, "recorded_at": recorded,
                  "period": PERIOD, "corrects_period": None, "actor_id": actor[0], "actor_label": actor[1],
                  "reason": reason, "ref_position": ref}
        digest = link_hash(state["prev"], canonical(position, key, values))
        out_row = (position, key, state["prev"], digest, kind, bucket, beneficiary, None, rate_version_id, amount,
                   dt(at), dt(recorded), PERIOD, None, actor[0], actor[1], reason, ref)
        state["position"], state["prev"] = position, digest
        kinds[kind] = kinds.get(kind, 0) + 1
        return out_row

    billing = (None, "api-key:billing")
    while state["position"] < n:
        r = rng.random()
        at, recorded = event_time()
        if r < 0.48 or not signed:  # signing by the agent: accrual + the supervisor's override
            if not turn:
                turn = agents[:]
                rng.shuffle(turn)
            agent, sup = turn.pop()
            state["contracts"] += 1
            number = f"D-2026-{state['contracts']:07d}"
            x = sum(amounts[c] for c in (rng.choice(["net100", "net300", "net500"]),
                                         *[a for a in ("tv", "phone") if rng.random() < 0.3]))
            refs = []
            for kind, b, amt in (("accrual", agent, x), ("override", sup, commission.override_amount(x, override_bp))):
                yield row(f"{kind}:{number}:{b}", kind, "pending", b, amt, at, recorded, (agent, logins[agent]))
                refs.append((b, amt, state["position"]))
            signed.append((number, refs))
        elif r < 0.84 and n - state["position"] >= 4:  # activation (billing): release + earned per accrual
            number, refs = signed.pop(rng.randrange(len(signed)) if rng.random() < 0.3 else 0)
            earned = []
            for b, amt, ref in refs:
                yield row(f"release:{number}:{b}", "release", "pending", b, -amt, at, recorded, billing, ref=ref)
                yield row(f"earned:{number}:{b}", "earned", "payable", b, amt, at, recorded, billing, ref=ref)
                earned.append((b, amt, state["position"]))
            activated.append((number, earned))
        elif r < 0.94 or not activated:  # cancelled before activation: void per accrual
            number, refs = signed.pop(rng.randrange(len(signed)))
            reason = rng.choice(REASONS)
            for b, amt, ref in refs:
                yield row(f"void:{number}:{b}", "void", "pending", b, -amt, at, recorded, billing, reason, ref)
        else:  # cancelled inside the clawback window: clawback per earned
            number, refs = activated.pop(rng.randrange(len(activated)))
            reason = rng.choice(REASONS)
            for b, amt, ref in refs:
                yield row(f"clawback:{number}:{b}", "clawback", "payable", b, -amt, at, recorded, billing, reason, ref)
        if len(activated) > 20000:
            activated.pop(0)


# --- measuring -----------------------------------------------------------------------


#: Runs one command and writes its wall time, exit code and rusage (from ``os.wait4``) as JSON.
#: A small, fresh parent matters: Linux starts a child's ``ru_maxrss`` at the peak RSS of the
#: memory it was forked from (and ``subprocess`` uses vfork, i.e. the parent's very memory), so
#: a child started straight from this script would report at least this script's peak (the
#: ledger builder's), not its own. The launcher's own RSS (about 6 MiB) is the floor instead.
LAUNCHER = r"""
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(out, "w") as fh:
    json.dump({"wall": wall, "rc": os.waitstatus_to_exitcode(status), "rss_kib": ru.ru_maxrss,
               "cpu": ru.ru_utime + ru.ru_stime}, fh)
"""


def run_cli(url: str, args: list[str]) -> dict:
    """One CLI subprocess (through LAUNCHER): wall time, exit code, output, and the peak RSS of
    that process alone."""
    import json

    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-secret"}
    command = ledger_verify.flask_command() + ["--app", "app", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, report.name, *command], cwd=common.ROOT,
                       env=env, stdout=out, stderr=err, check=True)
        with open(report.name) as fh:
            res = json.load(fh)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    lines = stdout.strip().splitlines()
    return {**res, "stdout": stdout, "stderr": stderr, "last": lines[-1] if lines else stderr.strip()[-300:]}


def show(label: str, res: dict, baseline: dict | None = None) -> None:
    growth = ""
    if baseline is not None:
        growth = f", growth {mib(res['rss_kib'] - baseline['rss_kib'])}"
    print(f"  {label}: {res['wall']:.2f} s wall ({res['cpu']:.2f} s CPU), peak RSS {mib(res['rss_kib'])}{growth}, "
          f"exit {res['rc']}: {res['last']}")
    if res["rc"] != 0 and res["stderr"].strip() and baseline is not None:
        print("    stderr: " + res["stderr"].strip()[-2000:].replace("\n", "\n    "))


# --- checking ------------------------------------------------------------------------


def expected_rows(dbs, url: str) -> dict[int, dict[str, int]]:
    """Per beneficiary with an entry in PERIOD: the payout file's figures, summed in raw SQL
    (nothing before PERIOD exists, so net = the period's payable entries)."""
    mark = "?" if dbs.dialect == "sqlite" else "%s"
    conn = dbs.raw_connect(url)
    try:
        cur = conn.cursor()
        out: dict[int, dict[str, int]] = {}
        cur.execute(f"SELECT DISTINCT beneficiary_id FROM ledger_entries WHERE period = {mark}", (PERIOD,))
        for (b,) in cur.fetchall():
            out[b] = {"accruals_earned": 0, "overrides_earned": 0, "bonuses": 0, "adjustments": 0, "clawbacks": 0,
                      "net": 0}
        cur.execute(f"SELECT beneficiary_id, SUM(amount) FROM ledger_entries WHERE period = {mark} "
                    f"AND bucket = 'payable' GROUP BY beneficiary_id", (PERIOD,))
        for b, total in cur.fetchall():
            out[b]["net"] = int(total)
        cur.execute(f"SELECT e.beneficiary_id, r.kind, SUM(e.amount) FROM ledger_entries e "
                    f"JOIN ledger_entries r ON r.position = e.ref_position "
                    f"WHERE e.period = {mark} AND e.kind = 'earned' GROUP BY e.beneficiary_id, r.kind", (PERIOD,))
        for b, ref_kind, total in cur.fetchall():
            out[b]["overrides_earned" if ref_kind == "override" else "accruals_earned"] += int(total)
        for kind, column in (("clawback", "clawbacks"), ("bonus", "bonuses"), ("adjustment", "adjustments")):
            cur.execute(f"SELECT beneficiary_id, SUM(amount) FROM ledger_entries WHERE period = {mark} "
                        f"AND kind = {mark} GROUP BY beneficiary_id", (PERIOD, kind))
            for b, total in cur.fetchall():
                out[b][column] = int(total)
        if dbs.dialect == "postgresql":
            conn.rollback()
        return out
    finally:
        conn.close()


def minor(text: str) -> int:
    return int(Decimal(text) * 100)


def check_csv(path: str, head: str, expected: dict, people: dict) -> list[str]:
    """Problems found in the payout file (empty = all good); prints a summary line."""
    from crm.finance import core

    problems = []
    with open(path, encoding="utf-8", newline="") as fh:
        first = fh.readline()
        if not first.startswith(f"# period={PERIOD} "):
            problems.append(f"first line does not start with '# period={PERIOD} ': {first[:80]!r}")
        if not first.rstrip("\n").endswith(f"ledger_head={head}"):
            problems.append(f"first line does not end with the close's head {head}: {first[-90:]!r}")
        reader = csv.reader(fh)
        header = next(reader, None)
        if tuple(header or ()) != core.HEADER:
            problems.append(f"header differs: {header}")
        rows = list(reader)
    by_login = {p[0]: (uid, p) for uid, p in people.items()}
    col = {name: i for i, name in enumerate(core.HEADER)}
    seen, bad, net_total, currencies = set(), 0, 0, set()
    for values in rows:
        if len(values) != len(core.HEADER):
            bad += 1
            continue
        login = values[col["login"]]
        uid, (_login, number, role, sup_login) = by_login.get(login, (None, (None, None, None, None)))
        want = expected.get(uid)
        net_total += minor(values[col["net"]])
        currencies.add(values[col["currency"]])
        ok = (want is not None and login not in seen and values[col["period"]] == PERIOD
              and values[col["personnel_number"]] == number and values[col["role"]] == role
              and values[col["supervisor"]] == (sup_login or "")
              and all(minor(values[col[k]]) == v for k, v in want.items()))
        seen.add(login)
        if not ok:
            bad += 1
            if bad <= 3:
                problems.append(f"row differs from the SQL sums: {values} (expected {want})")
    sql_total = sum(v["net"] for v in expected.values())
    logins = [r[col["login"]] for r in rows if len(r) == len(core.HEADER)]
    if len(rows) != len(expected):
        problems.append(f"{len(rows)} data rows, but {len(expected)} beneficiaries have entries in {PERIOD}")
    if bad:
        problems.append(f"{bad} rows differ from the SQL sums")
    if logins != sorted(logins):
        problems.append("rows are not sorted by login")
    if net_total != sql_total:
        problems.append(f"net column sums to {net_total}, SQL sum of payable entries is {sql_total}")
    if len(currencies) != 1:
        problems.append(f"currency column: {sorted(currencies)}")
    print(f"  CSV: {len(rows):,} data rows (beneficiaries with entries in {PERIOD}: {len(expected):,}), "
          f"{os.path.getsize(path):,} bytes; first line {first.strip()[:60]}… ledger_head "
          f"{'= the close head' if first.rstrip().endswith(head) else 'DIFFERS'}; net total "
          f"{net_total / 100:,.2f} {'/'.join(sorted(currencies))} vs SQL payable sum {sql_total / 100:,.2f} "
          f"({'equal' if net_total == sql_total else 'DIFFERENT'}); rows differing from the SQL sums per "
          f"beneficiary: {bad}")
    return problems


# --- main ----------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--beneficiaries", type=int, default=5000, help="agents + supervisors (one supervisor per ten)")
    parser.add_argument("--repeat", type=int, default=3, help="export runs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.beneficiaries < 2:
        parser.error("--beneficiaries must be at least 2")

    from crm.finance import core

    period_end = core.bounds(PERIOD, common.COMPANY_TZ)[1]
    if datetime.now(timezone.utc) < period_end:
        raise SystemExit(f"the real clock is before the end of {PERIOD}: the CLI would refuse the close")
    current = core.period_of(datetime.now(timezone.utc), common.COMPANY_TZ)
    supervisors = max(1, args.beneficiaries // 10)
    problems: list[str] = []

    print(f"finance_export on {args.db}: {args.entries:,} entries over {args.beneficiaries:,} beneficiaries "
          f"({args.beneficiaries - supervisors:,} agents under {supervisors:,} supervisors), period {PERIOD}; "
          f"code {common.revision()}; {common.load()}")
    with common.databases(args.db, "finance") as dbs, tempfile.TemporaryDirectory(prefix="bench_finance_") as tmp:
        t = time.perf_counter()
        url = dbs.create_empty("ledger")
        common.build_world(url, 0)
        facts = common.world_facts(url)
        agents, people = insert_people(dbs, url, args.beneficiaries, supervisors, facts["users"]["head"])
        setup = time.perf_counter() - t
        built: dict = {}
        logins = {uid: p[0] for uid, p in people.items()}
        rows = itertools.islice(period_rows(args.entries, agents, logins, facts["rate_version_id"], args.seed, args.db,
                                            built), args.entries)
        build = ledger_verify.fill_ledger(dbs, url, rows, args.entries)
        if args.db == "sqlite":
            size = f"database file {os.path.getsize(url[len('sqlite:///'):]) / 2**20:,.0f} MiB"
        else:
            import psycopg

            with psycopg.connect(url) as c:
                total = c.execute("SELECT pg_total_relation_size('ledger_entries')").fetchone()[0]
            size = f"ledger_entries with indexes {total / 2**20:,.0f} MiB"
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(built["kinds"].items(), key=lambda kv: -kv[1]))
        print(f"build: {args.entries:,} entries in {build:.1f} s ({common.rate(args.entries, build)} rows/s, raw "
              f"executemany, one transaction, contract_id NULL); {size}; world set-up {setup:.1f} s")
        print(f"  kinds: {kinds}")
        built_head = f"{built['state']['position']}:{built['state']['prev']}"
        if built["state"]["position"] != args.entries:
            problems.append(f"built {built['state']['position']} entries, not {args.entries}")

        print("close (subprocess, real clock):")
        base_close = run_cli(url, ["finance", "close", "--period", current])
        show(f"baseline: finance close --period {current} (refused)", base_close)
        if base_close["rc"] != 1 or "refused" not in base_close["stdout"]:
            problems.append(f"the baseline close was not refused: {base_close['last']}")
        closed = run_cli(url, ["finance", "close", "--period", PERIOD])
        show(f"finance close --period {PERIOD}", closed, base_close)
        head = closed["last"].rsplit("head ", 1)[-1].strip() if closed["rc"] == 0 else ""
        if closed["rc"] != 0:
            problems.append(f"close exited {closed['rc']}")
        elif head != built_head:
            problems.append(f"the close's head {head} is not the built ledger's head {built_head}")

        print("export (subprocess):")
        previous = core.previous_period(PERIOD)
        base_export = run_cli(url, ["finance", "export", "--period", previous, "--format", "csv", "--out",
                                    os.path.join(tmp, "refused.csv")])
        show(f"baseline: finance export --period {previous} (refused: not closed)", base_export)
        if base_export["rc"] != 1 or "refused" not in base_export["stdout"]:
            problems.append(f"the baseline export was not refused: {base_export['last']}")
        exports = []
        path = os.path.join(tmp, f"payout-{PERIOD}.csv")
        for i in range(max(1, args.repeat)):
            if os.path.exists(path):
                os.remove(path)
            res = run_cli(url, ["finance", "export", "--period", PERIOD, "--format", "csv", "--out", path])
            show(f"run {i + 1}: finance export --period {PERIOD} --format csv --out FILE", res, base_export)
            exports.append(res)
            if res["rc"] != 0:
                problems.append(f"export run {i + 1} exited {res['rc']}")
        if os.path.exists(path) and head:
            problems += check_csv(path, head, expected_rows(dbs, url), people)
        elif not os.path.exists(path):
            problems.append("no CSV written")

        print("chains after close and exports (subprocess):")
        verify = run_cli(url, ["ledger", "verify", *(["--expect", head] if head else [])])
        show("ledger verify --expect HEAD", verify)
        audit = run_cli(url, ["ledger", "verify", "--audit"])
        show("ledger verify --audit", audit)
        for name, res in (("ledger", verify), ("audit", audit)):
            if res["rc"] != 0:
                problems.append(f"{name} verify exited {res['rc']}: {res['last']}")

        limit_kib = TARGET_MB * 10**6 / 1024
        close_growth = closed["rss_kib"] - base_close["rss_kib"]
        export_growth = max(r["rss_kib"] for r in exports) - base_export["rss_kib"]
        best = min(r["wall"] for r in exports)
        print("summary:")
        print(f"  build time            {build:8.1f} s")
        print(f"  close time            {closed['wall']:8.2f} s   (refused-close baseline {base_close['wall']:.2f} s)")
        print(f"  close peak RSS growth {close_growth / 1024:8.1f} MiB  (peak {closed['rss_kib'] / 1024:.1f}, "
              f"baseline {base_close['rss_kib'] / 1024:.1f} MiB)  ≤ {TARGET_MB} MB: "
              f"{'yes' if close_growth <= limit_kib else 'NO'}")
        print(f"  export time           {best:8.2f} s   (best of {len(exports)}: "
              f"{', '.join(format(r['wall'], '.2f') for r in exports)}; refused-export baseline {base_export['wall']:.2f} s)")
        print(f"  export peak RSS growth {export_growth / 1024:7.1f} MiB  (largest peak "
              f"{max(r['rss_kib'] for r in exports) / 1024:.1f}, baseline {base_export['rss_kib'] / 1024:.1f} MiB)")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                rows_out = sum(1 for _ in fh) - 2
            print(f"  rows                  {rows_out:8,}")
            print(f"  file bytes            {os.path.getsize(path):8,}")
        print(f"  target met (export peak RSS growth ≤ {TARGET_MB} MB): "
              f"{'yes' if export_growth <= limit_kib else 'NO'}")
    print(f"at the end: {common.load()}")
    for p in problems:
        print(f"CHECK FAILED: {p}")
    print("checks: " + ("all passed" if not problems else f"{len(problems)} failed"))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
