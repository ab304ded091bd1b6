"""How long does verifying the commission ledger take? Target: 1,000,000 entries in <= 3 s.

    .venv/bin/python bench/ledger_verify.py [--db sqlite|postgresql] [--entries 1000000] [--repeat 2] [--profile]

Builds a throwaway migrated database (demo users, catalogue, one rate version, a few
buildings and ``--contracts`` real contracts), fills ``ledger_entries`` with the raw
driver (executemany in batches, in position order, one transaction; the insert-guard
triggers check every row) with chain hashes computed by ``crm.chain.canonical`` /
``link_hash``, then times

* ``flask --app app ledger verify`` as a subprocess (DATABASE_URL = the bench database),
  next to the same CLI's start-up alone (``flask --app app ledger --help``);
* ``crm.chain.verify`` in-process (``--repeat`` times).

``--profile`` adds a breakdown of the in-process verify: the stages timed separately
(raw driver fetch, SQLAlchemy fetch with type processing, canonical encoding, hashing),
a cProfile run grouped into fetch / encoding / hashing / loop, and prototypes of a
faster verify (B: the database builds the canonical text; C, PostgreSQL: all in SQL).
Use it on a smaller ledger, e.g. ``--entries 200000 --profile``.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import os
import pstats
import queue
import subprocess
import sys
import threading
import time
from datetime import timedelta
from random import Random

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)

SPAN_DAYS = 365
BATCH = 50_000
TARGET_S = 3.0


# --- building the ledger -------------------------------------------------------------


def ledger_rows(n: int, facts: dict, contract_ids: list[int], seed: int, dialect: str):
    """Yield ``n`` chained rows (LEDGER_COLUMNS order) of a plausible commission history:
    signings (accrual + override), activations (release + earned, referring to the accruals),
    voids, clawbacks, and a few bonuses, adjustments and payouts with reasons."""
    from crm.chain import ZERO_HASH, canonical, link_hash
    from crm.ledger import commission

    rng = Random(seed)
    dt = common.sqlite_dt if dialect == "sqlite" else common.pg_dt
    amounts = {**common.RATES["agent"]["tariffs"], **common.RATES["agent"]["addons"]}
    override_bp = commission.percent_to_bp(common.RATES["supervisor_override_percent"])
    rv = facts["rate_version_id"]
    users = facts["users"]
    people = [users[login] for login in ("head", "fin1", "fin2") if login in users]
    beneficiaries = [a for a, _ in facts["agents"]] + [s for _, s in facts["agents"] if s]
    actors = [(None, "cli"), (None, "api-key:billing"), (None, "api-key:installers")] + \
             [(uid, login) for login, uid in users.items() if login in ("head", "fin1", "fin2")]
    reasons = ["moved out", "found a cheaper provider", "unhappy with installation", "changed their mind"]
    step = timedelta(days=SPAN_DAYS) / max(n, 1)
    state = {"position": 0, "prev": ZERO_HASH, "contracts": 0}
    signed, activated = [], []  # open pseudo-contracts: (number, contract_id, [(b, amount, ref_pos)])

    def row(key, kind, bucket, beneficiary, amount, contract_id=None, reason=None, ref=None, actor=(None, "cli")):
        position = state["position"] + 1
        at = common.T0 + step * position + timedelta(seconds=rng.uniform(-3600, 0), microseconds=rng.randrange(10**6))
        recorded = at + timedelta(seconds=rng.uniform(0.01, 2.0 if rng.random() < 0.9 else 86400.0))
        period = common.month_of(at)
        values = {"kind": kind, "bucket": bucket, "beneficiary_id": beneficiary, "contract_id": contract_id,
                  "rate_version_id": rv if contract_id else None, "amount": amount, "at": at,
                  "recorded_at": recorded, "period": period, "corrects_period": None, "actor_id": actor[0],
                  "actor_label": actor[1], "reason": reason, "ref_position": ref}
        digest = link_hash(state["prev"], canonical(position, key, values))
        out = (position, key, state["prev"], digest, kind, bucket, beneficiary, contract_id, values["rate_version_id"],
               amount, dt(at), dt(recorded), period, None, actor[0], actor[1], reason, ref)
        state["position"], state["prev"] = position, digest
        return out

    while state["position"] < n:
        r = rng.random()
        if r < 0.42 or not signed:  # signing: accrual for the agent, override for the supervisor
            state["contracts"] += 1
            number = f"D-2026-{state['contracts']:07d}"
            agent, sup = rng.choice(facts["agents"])
            x = sum(amounts[c] for c in (rng.choice(["net100", "net300", "net500"]),
                                         *[a for a in ("tv", "phone") if rng.random() < 0.3]))
            cid = rng.choice(contract_ids) if contract_ids else None
            actor = rng.choice(actors[:3])
            refs = []
            for kind, b, amt in (("accrual", agent, x), ("override", sup, commission.override_amount(x, override_bp))):
                yield row(f"{kind}:{number}:{b}", kind, "pending", b, amt, cid, actor=actor)
                refs.append((b, amt, state["position"]))
            signed.append((number, cid, refs))
        elif r < 0.75:  # activation: release + earned per accrual
            number, cid, refs = signed.pop(rng.randrange(len(signed)) if rng.random() < 0.3 else 0)
            actor = rng.choice(actors[:3])
            earned = []
            for b, amt, ref in refs:
                yield row(f"release:{number}:{b}", "release", "pending", b, -amt, cid, ref=ref, actor=actor)
                yield row(f"earned:{number}:{b}", "earned", "payable", b, amt, cid, ref=ref, actor=actor)
                earned.append((b, amt, state["position"]))
            activated.append((number, cid, earned))
        elif r < 0.86:  # cancelled before activation: void
            number, cid, refs = signed.pop(rng.randrange(len(signed)))
            reason = rng.choice(reasons)
            for b, amt, ref in refs:
                yield row(f"void:{number}:{b}", "void", "pending", b, -amt, cid, reason, ref)
        elif r < 0.93 and activated:  # cancelled inside the clawback window
            number, cid, refs = activated.pop(rng.randrange(len(activated)))
            reason = rng.choice(reasons)
            for b, amt, ref in refs:
                yield row(f"clawback:{number}:{b}", "clawback", "payable", b, -amt, cid, reason, ref)
        elif r < 0.97:  # monthly accelerator bonus
            b = rng.choice(beneficiaries)
            yield row(f"bonus:{state['position']}:{b}", "bonus", "payable", b, rng.choice([10000, 15000]) * rng.randint(30, 80),
                      reason=None if rng.random() < 0.7 else "tier bonus", actor=(people[0], "head") if people else (None, "cli"))
        elif r < 0.99:  # manual adjustment with a reason
            b = rng.choice(beneficiaries)
            yield row(f"adjustment:{state['position']}:{b}", "adjustment", "payable", b, rng.randint(-50000, 50000),
                      reason="correction after a billing dispute", actor=rng.choice(actors[3:] or actors))
        else:  # payout of the payable balance
            b = rng.choice(beneficiaries)
            yield row(f"payout:{state['position']}:{b}", "payout", "payable", b, -rng.randint(100000, 5000000),
                      reason=None, actor=rng.choice(actors[3:] or actors))
        if len(activated) > 5000:
            activated.pop(0)


def fill_ledger(dbs, url: str, rows, n: int) -> float:
    """executemany in batches of BATCH rows, in position order, one transaction; returns seconds.

    A writer thread inserts batch k while this thread hashes batch k+1 (both drivers
    release the GIL while the database works), so building costs about max(hashing, inserting).
    """
    sql = common.insert_sql(dbs.dialect, "ledger_entries", common.LEDGER_COLUMNS)
    conn = dbs.raw_connect(url) if dbs.dialect == "postgresql" else None
    batches: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    started = time.perf_counter()

    def writer():
        # sqlite3 connections belong to the thread that opened them
        wconn = conn or dbs.raw_connect(url)
        ended = False
        try:
            cur = wconn.cursor()
            common.begin(dbs.dialect, cur)
            done = 0
            while (batch := batches.get()) is not None:
                cur.executemany(sql, batch)
                done += len(batch)
                print(f"  … {done:,}/{n:,} rows, {time.perf_counter() - started:.0f} s", end="\r", file=sys.stderr,
                      flush=True)
            ended = True
            common.commit(dbs.dialect, wconn, cur)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            while not ended and batches.get() is not None:  # drain so the producer never blocks
                pass
        finally:
            if conn is None:
                wconn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        batch = []
        for r in rows:
            batch.append(r)
            if len(batch) == BATCH:
                batches.put(batch)
                batch = []
            if failure:
                break
        if batch and not failure:
            batches.put(batch)
    finally:
        batches.put(None)
        thread.join()
    if failure:
        raise failure[0]
    conn = conn or dbs.raw_connect(url)
    try:
        cur = conn.cursor()
        if dbs.dialect == "postgresql":
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE ledger_entries")  # what autovacuum would do after a bulk load
        else:
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    print(" " * 60, end="\r", file=sys.stderr)
    return time.perf_counter() - started


# --- timing verify -------------------------------------------------------------------


def flask_command() -> list[str]:
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    return [flask] if os.path.exists(flask) else [sys.executable, "-m", "flask"]


def run_cli(url: str, args: list[str]) -> tuple[float, int, str]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-secret"}
    started = time.perf_counter()
    proc = subprocess.run(flask_command() + ["--app", "app", *args], cwd=common.ROOT, env=env,
                          capture_output=True, text=True)
    return time.perf_counter() - started, proc.returncode, (proc.stdout + proc.stderr).strip()


def verify_in_process(app, workers=None):
    from crm import chain
    from crm.database import write_intent
    from crm.extensions import db
    from crm.ledger.models import LedgerEntry

    with app.app_context():
        token = write_intent.set(False)
        try:
            started = time.perf_counter()
            result = chain.verify(db.session, LedgerEntry, workers=workers)
            elapsed = time.perf_counter() - started
            db.session.rollback()
        finally:
            write_intent.reset(token)
    return elapsed, result


def json_loop(dbs, url: str) -> float:
    """What the issue's 5 s figure was measured with: every row fetched, encoded as JSON, hashed
    after the previous hash and compared, in one process. A yardstick for this machine's speed."""
    import hashlib
    import json

    from crm.chain import ZERO_HASH
    from crm.ledger.models import LedgerEntry

    fields = sorted(LedgerEntry.__chain_fields__)
    sql = f"SELECT position, idempotency_key, prev_hash, hash, {', '.join(fields)} FROM ledger_entries ORDER BY position"
    started = time.perf_counter()
    prev, same = ZERO_HASH, 0
    for row in _raw_rows(dbs, url, sql):
        doc = json.dumps({"position": row[0], "key": row[1], **dict(zip(fields, row[4:]))}, sort_keys=True,
                         default=str, separators=(",", ":"))
        same += hashlib.sha256(bytes.fromhex(prev) + doc.encode()).hexdigest() == row[3]  # another encoding: 0
        prev = row[3]
    return time.perf_counter() - started


# --- profile -------------------------------------------------------------------------


FETCH = "fetch (driver, SQLAlchemy, type processing)"
ENCODE = "canonical encoding"
HASH = "hashing (sha256, hex)"
LOOP = "verify loop (rows, compares)"


def _bucket_of(func, as_caller_of=None) -> str | None:
    """The bucket of a profiled function; None = decide by its callers."""
    filename, _line, name = func
    if filename == "~":  # a built-in
        if any(s in name for s in ("sha256", "hexdigest", "fromhex")):
            return HASH
        if any(s in name for s in ("fetchmany", "fetchall", "fetchone", "sqlite3.Cursor", "psycopg")):
            return FETCH
        return None
    if "/sqlalchemy/" in filename or "/psycopg" in filename or filename.endswith("crm/types.py") \
            or "/_strptime" in filename:
        return FETCH
    if filename.startswith("<chain encoder"):  # the row encoder crm.chain generates per table
        return ENCODE
    if filename.endswith("crm/chain.py"):
        if name == "link_hash":
            return HASH
        if name in ("_check", "broken", "run"):
            # built-ins called straight from the loop (str(), len(), join, encode) are encoding work
            return ENCODE if as_caller_of is not None else LOOP
        if name == "verify":
            return "other"
        return ENCODE  # canonical, _encode, the raw encoders, list comprehensions
    return "other"


def profile_buckets(stats: pstats.Stats) -> dict[str, float]:
    """Own time of every function, grouped; a built-in's time goes to its callers' buckets."""
    raw = stats.stats  # func -> (cc, nc, tt, ct, callers)
    memo: dict = {}

    def bucket(func, depth=0) -> dict[str, float]:
        """Shares of buckets a function's own time belongs to."""
        if func in memo:
            return memo[func]
        b = _bucket_of(func)
        if b is not None or depth > 8:
            memo[func] = {b or "other": 1.0}
            return memo[func]
        callers = raw[func][4]
        total = sum(v[2] for v in callers.values()) or 1.0
        shares: dict[str, float] = {}
        for caller, v in callers.items():
            direct = _bucket_of(caller, as_caller_of=func)
            for name, share in ({direct: 1.0} if direct else bucket(caller, depth + 1)).items():
                shares[name] = shares.get(name, 0.0) + share * v[2] / total
        memo[func] = shares or {"other": 1.0}
        return memo[func]

    out: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        for name, share in bucket(func).items():
            out[name] = out.get(name, 0.0) + tt * share
    return out


def _raw_rows(dbs, url: str, sql: str, batch: int = 10000):
    """Rows of ``sql`` through the raw driver (PostgreSQL: a server-side cursor, as yield_per uses)."""
    conn = dbs.raw_connect(url)
    try:
        if dbs.dialect == "sqlite":
            cur = conn.execute(sql)
            while chunk := cur.fetchmany(batch):
                yield from chunk
        else:
            with conn.cursor(name="bench_fetch") as cur:
                cur.itersize = batch
                cur.execute(sql)
                while chunk := cur.fetchmany(batch):
                    yield from chunk
            conn.rollback()
    finally:
        conn.close()


def _datetime_fields(model) -> set[str]:
    from crm.types import UTCDateTime

    return {name for name in model.__chain_fields__ if isinstance(model.__table__.c[name].type, UTCDateTime)}


def _payload_sql(dialect: str, model) -> str:
    """An SQL expression for the canonical text of a row: length-prefixed tokens, '~' for NULL,
    ``name=token`` in name order, newlines between (crm.chain.canonical, spelled in SQL)."""
    datetimes = _datetime_fields(model)
    sqlite = dialect == "sqlite"

    def token(name: str) -> str:
        if name in datetimes:  # stored naive UTC; SQLite text 'YYYY-MM-DD HH:MM:SS.ffffff'
            body = (f"'27:' || substr({name}, 1, 10) || 'T' || substr({name}, 12, 15) || 'Z'" if sqlite
                    else f"""'27:' || to_char({name}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""")
        else:  # integers and text (the ledger has no booleans)
            body = (f"length({name}) || ':' || {name}" if sqlite
                    else f"char_length({name}::text) || ':' || {name}::text")
        return f"CASE WHEN {name} IS NULL THEN '~' ELSE {body} END"

    newline = " || char(10) || " if sqlite else " || chr(10) || "
    parts = ["position" if sqlite else "position::text", token("idempotency_key")]
    parts += [f"'{name}=' || {token(name)}" for name in sorted(model.__chain_fields__)]
    return newline.join(parts)


def prototype_sql_payload(dbs, url: str, model) -> tuple[bool, int, str]:
    """Suggestion B, sketched: the database builds the canonical text in the SELECT; Python
    only checks positions and links and hashes. An encoding slip can only raise a false alarm,
    never hide a change (the stored hash has to match)."""
    import hashlib

    from crm.chain import ZERO_HASH

    sql = (f"SELECT position, prev_hash, hash, {_payload_sql(dbs.dialect, model)} "
           f"FROM {model.__tablename__} ORDER BY position")
    expected, prev, sha, fromhex = 1, ZERO_HASH, hashlib.sha256, bytes.fromhex
    for position, prev_hash, stored, payload in _raw_rows(dbs, url, sql):
        if position != expected or prev_hash != prev:
            return False, position, prev
        if sha(fromhex(prev) + payload.encode()).hexdigest() != stored:
            return False, position, prev
        prev, expected = stored, expected + 1
    return True, expected - 1, prev


def prototype_all_sql(dbs, url: str, model) -> tuple[bool, int, str]:
    """Suggestion C (PostgreSQL), sketched: one query recomputes every hash with sha256() and
    checks every link with lag(); nothing per row crosses into Python."""
    table = model.__tablename__
    sql = f"""
        SELECT count(*), coalesce(max(position), 0),
               min(position) FILTER (WHERE prev_hash <> coalesce(prev_stored, repeat('0', 64))
                   OR encode(sha256(decode(prev_hash, 'hex') || convert_to(payload, 'UTF8')), 'hex') <> hash)
        FROM (SELECT position, prev_hash, hash, lag(hash) OVER (ORDER BY position) AS prev_stored,
                     {_payload_sql(dbs.dialect, model)} AS payload
              FROM {table}) AS links"""
    conn = dbs.raw_connect(url)
    try:
        count, last, first_bad = conn.execute(sql).fetchone()
        head = conn.execute(f"SELECT hash FROM {table} WHERE position = %s", (last,)).fetchone()
        conn.rollback()
    finally:
        conn.close()
    from crm.chain import ZERO_HASH

    ok = first_bad is None and count == last
    return ok, count if ok else (first_bad or count), head[0] if head else ZERO_HASH


def profile(dbs, url: str, app) -> None:
    from sqlalchemy import select

    from crm import chain
    from crm.database import write_intent
    from crm.extensions import db
    from crm.ledger.models import LedgerEntry

    fields = LedgerEntry.__chain_fields__
    names = ["position", "idempotency_key", "prev_hash", "hash", *sorted(fields)]
    print("profile of the in-process verify — stages timed separately, no profiler:")

    started = time.perf_counter()
    count = sum(1 for _ in _raw_rows(dbs, url, f"SELECT {', '.join(names)} FROM ledger_entries ORDER BY position"))
    t_raw = time.perf_counter() - started

    with app.app_context():
        token = write_intent.set(False)
        try:
            columns = [getattr(LedgerEntry, n) for n in names]
            stmt = select(*columns).order_by(LedgerEntry.position).execution_options(yield_per=5000)
            started = time.perf_counter()
            for _row in db.session.execute(stmt):  # streamed and dropped
                pass
            t_sa = time.perf_counter() - started
            db.session.rollback()
            rows = [tuple(r) for r in db.session.execute(stmt)]  # kept for the next stages, not timed
            db.session.rollback()
            started = time.perf_counter()
            result = chain.verify(db.session, LedgerEntry, workers=1)
            t_verify = time.perf_counter() - started
            db.session.rollback()
        finally:
            write_intent.reset(token)

    # the stages below hold every row in memory; keep the cyclic GC from walking them over and over
    gc.collect()
    gc.disable()
    try:
        values = [dict(zip(names[4:], r[4:])) for r in rows]
        started = time.perf_counter()
        payloads = [chain.canonical(r[0], r[1], v) for r, v in zip(rows, values)]
        t_canon = time.perf_counter() - started
        started = time.perf_counter()
        hashes = [chain.link_hash(r[2], p) for r, p in zip(rows, payloads)]
        t_hash = time.perf_counter() - started
        assert hashes == [r[3] for r in rows]
    finally:
        gc.enable()
    del rows, values, payloads, hashes

    n = count
    per = lambda s: f"{s:7.3f} s  {s / n * 1e6:6.2f} µs/entry"  # noqa: E731
    print(f"  raw driver fetch of the chained columns           {per(t_raw)}")
    print(f"  same via SQLAlchemy with UTCDateTime processing   {per(t_sa)}  (ORM types cost {t_sa - t_raw:+.3f} s)")
    print(f"  crm.chain.canonical() on typed values             {per(t_canon)}  (the writers' encoder)")
    print(f"  crm.chain.link_hash() on those payloads           {per(t_hash)}")
    print(f"  crm.chain.verify as a whole, one process          {per(t_verify)}  {result.line('ledger')[:30]}…")
    print(f"  → verify minus raw fetch minus hashing ≈ {t_verify - t_raw - t_hash:.3f} s: encoding, loop, compares")

    profiler = cProfile.Profile()
    with app.app_context():
        token = write_intent.set(False)
        try:
            profiler.enable()
            chain.verify(db.session, LedgerEntry, workers=1)
            profiler.disable()
            db.session.rollback()
        finally:
            write_intent.reset(token)
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())
    print(f"cProfile of crm.chain.verify, one process ({total:.2f} s of own time under the profiler), grouped:")
    for name, seconds in sorted(profile_buckets(stats).items(), key=lambda kv: -kv[1]):
        if seconds >= 0.0005:
            print(f"  {name:<44} {seconds:7.3f} s  {seconds / total * 100:5.1f} %")
    print("top functions by own time:")
    for func, (cc, nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:14]:
        filename, line, name = func
        where = name if filename == "~" else f"{os.path.relpath(filename, common.ROOT) if filename.startswith(common.ROOT) else os.path.basename(filename)}:{line}({name})"
        print(f"  {tt:7.3f} s  {nc:>9,} calls  {where}")

    reference = (result.count, result.head_hash)
    print("prototypes for a faster verify (must reach the same verdict and head as crm.chain.verify):")
    prototypes = [("B canonical text built in the SELECT, Python hashes", prototype_sql_payload)]
    if dbs.dialect == "postgresql":
        prototypes.append(("C all in SQL: sha256() and lag() in one query", prototype_all_sql))
    for label, fn in prototypes:
        started = time.perf_counter()
        ok, count, head = fn(dbs, url, LedgerEntry)
        elapsed = time.perf_counter() - started
        same = ok and (count, head) == reference
        print(f"  {label:<52} {per(elapsed)}  {common.rate(count, elapsed)} entries/s  "
              f"{'same head' if same else 'DIFFERENT VERDICT'}  (chain.verify: {t_verify:.3f} s)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--contracts", type=int, default=500, help="real contract rows the entries point at")
    parser.add_argument("--repeat", type=int, default=2, help="in-process verify runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="stage timings and cProfile of the in-process verify")
    args = parser.parse_args(argv)

    with common.databases(args.db, "verify") as dbs:
        t = time.perf_counter()
        url = dbs.create_empty("ledger")
        buildings = max(1, -(-args.contracts // common.APARTMENTS))
        common.build_world(url, buildings)
        facts = common.world_facts(url)
        contracts = [{"id": i, "number": f"D-2026-{i:06d}", "agent_id": a, "supervisor_id": s,
                      "building_id": facts["buildings"][(i - 1) // common.APARTMENTS],
                      "flat": (i - 1) % common.APARTMENTS + 1, "tariff_id": facts["tariffs"]["net100"][0],
                      "monthly_fee": facts["tariffs"]["net100"][1], "at": common.T0 + timedelta(hours=i),
                      "rate_version_id": facts["rate_version_id"]}
                     for i, (a, s) in zip(range(1, args.contracts + 1),
                                          (facts["agents"][i % len(facts["agents"])] for i in range(args.contracts)))]
        if contracts:
            common.insert_contracts(dbs, url, contracts)
        setup = time.perf_counter() - t
        rows = itertools.islice(ledger_rows(args.entries, facts, [c["id"] for c in contracts], args.seed, args.db),
                                args.entries)
        build = fill_ledger(dbs, url, rows, args.entries)
        size = ""
        if args.db == "sqlite":
            size = f", file {os.path.getsize(url[len('sqlite:///'):]) / 2**20:,.0f} MiB"
        else:
            import psycopg

            with psycopg.connect(url) as c:
                total = c.execute("SELECT pg_total_relation_size('ledger_entries')").fetchone()[0]
            size = f", table with indexes {total / 2**20:,.0f} MiB"
        print(f"ledger_verify on {args.db}: built {args.entries:,} entries in {build:.1f} s "
              f"({common.rate(args.entries, build)} rows/s, raw executemany, {BATCH:,}-row batches, one transaction"
              f"{size}; world set-up {setup:.1f} s); code {common.revision()}; {common.load()}")

        startup, rc0, out0 = run_cli(url, ["ledger", "--help"])
        cli, rc, out = run_cli(url, ["ledger", "verify"])
        print(f"flask --app app ledger verify (subprocess): {cli:6.2f} s wall, exit {rc}: {out.splitlines()[-1] if out else ''}")
        print(f"    CLI start-up alone (flask --app app ledger --help): {startup:.2f} s → verify work ≈ "
              f"{cli - startup:.2f} s ({common.rate(args.entries, cli - startup)} entries/s)")

        app = common.make_app(url)
        timings = []
        result = None
        cores = len(os.sched_getaffinity(0))
        for i in range(args.repeat):
            for workers, label in ((None, f"all {cores} cores"), (1, "one process")):
                elapsed, result = verify_in_process(app, workers)
                if workers is None:
                    timings.append(elapsed)
                print(f"crm.chain.verify in-process, run {i + 1}, {label:<12} {elapsed:6.2f} s  "
                      f"{common.rate(result.count, elapsed)} entries/s  {result.line('ledger')}")
        reference = json_loop(dbs, url)
        best = min(timings) if timings else float("inf")
        print(f"reference, the same rows through a plain loop with JSON encoding (fetch, json.dumps, sha256, one "
              f"process): {reference:.2f} s; the issue measured such a loop at about 5 s against its 3 s target "
              f"(0.60 of it): here verify is {cli / reference:.2f} of it as the CLI, {best / reference:.2f} in-process")
        print(f"target <= {TARGET_S:.0f} s for {args.entries:,} entries: subprocess {cli:.2f} s "
              f"({'met' if cli <= TARGET_S else 'MISSED'}), in-process best {best:.2f} s "
              f"({'met' if best <= TARGET_S else 'MISSED'})")
        if args.profile:
            profile(dbs, url, app)
        common.dispose(app)
    print(f"at the end: {common.load()}")
    ok = rc == 0 and result is not None and result.ok and result.count == args.entries
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
