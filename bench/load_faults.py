"""Load and faults: visits, contract signings and lifecycle events through the real HTTP API
under gunicorn, with workers killed mid-run; afterwards the database must be exactly right.

    .venv/bin/python bench/load_faults.py [--db sqlite|postgresql | --database-url URL]
        [--clients 20] [--requests 3000] [--kills 2] [--devices 2] [--twins 0.02]
        [--replays 0.02] [--probes 8] [--buildings-per-zone 5] [--seed 1]

The short form is ``tests/test_load_faults.py`` (``make test``): the same ``run`` with small numbers.

Set-up (through the app's services, not timed): the team of ``bench/sync.py``'s ``build_team``
(a sales head, a supervisor, ``ceil(clients / devices)`` agents, one zone each with
``--buildings-per-zone`` buildings), built with the clock standing four days back so that the
zones are walked since then and a phone's offline queue may sign up to 60 hours back; the
catalogue and the rate version of ``bench/_common.py`` (net100/net300/net500, tv, phone, 10 %
override) in force from that moment, with a one-day clawback window (so both "clawed back" and
"cancelled too late" happen); an API key with scope ``contracts:events``
(``crm.apikeys.services.create_key``).

One gunicorn (``app:create_app()``, 2 sync workers, real clock; ``bench/sync.py``'s ``Server``)
and these clients, all at once:

* ``--clients`` agent clients ("devices": ``--devices`` per agent, each signed in with its own
  session, so two devices of one agent race for the same doors). Each sends ``--requests`` in
  all of ``POST /api/v1/sync`` batches of 1–4 items mixing visits (every outcome, GPS near the
  building, ``at`` = now or up to 48 h back) and contracts (a tariff, add-ons, a phone to
  normalise; ``at`` = now or 30–60 h back; 40 % on a handful of "hot" flats per agent, so
  ``flat_taken`` is common), each item with its own UUID ``client_id``; now and then a
  ``GET /api/v1/me/zones``; ``--replays`` of the batches are sent again byte for byte later (every
  item must come back ``duplicate`` with the same ids); ``--twins`` are sent twice at once on two
  connections (an impatient phone: the first attempt's answer is lost, the resend races it).
* one installer client (the API key) that takes every contract an agent got ``created`` for and
  plays a plan on it through ``POST /api/v1/contracts/<number>/events``: nothing, paid,
  installation_scheduled (twice), cancelled before activation, activated (back-dated for some
  back-dated contracts), activated then cancelled; every event with its own ``event_id``; some
  sent again on purpose (must answer 200 with the original answer), some refused on purpose (a
  transition the table forbids, a replay with a different ``at``: 409).

Every request is retried, byte for byte, on a dropped connection, a timeout or a 5xx. Meanwhile
``--kills`` times, spaced out over the run, one worker (never the master) gets SIGKILL and the
master starts another. After the load, with the server still up and quiet, ``--probes`` of each:
a sync batch (a contract and a visit) sent twice at once; an activation and a cancellation of
the same signed contract sent at once on two connections (a billing system and an installer);
the same event sent twice at once.

Then the server is stopped and the database is checked with SQL: every visit client id stored
exactly once and as sent (``bench/sync.py``'s ``check_rows``), none of the rejected ones; every
contract client id at most once, every contract answered ``created`` stored once as sent with its
``signed`` visit; no flat with two active contracts; every ``event_id`` applied at most once, each
contract's recorded history following the status table and ending where the installer left it;
``flask ledger verify`` and ``flask ledger verify --audit`` (subprocesses) exit 0; every
contract's entries exactly what its history calls for (accrual and override pending; release and
earned after activation; void before activation; clawback within the window, nothing later);
every beneficiary's balances from ``crm.ledger.services.balances`` equal to SQL sums of their
entries and to what the clients were told; every statement (``crm.finance.services.statement``,
each beneficiary and month) equal to its entries. Exit 1 if a check fails.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)
import _territories as tt  # noqa: E402
import sync as sb  # noqa: E402  (bench/sync.py: the team, the server, sign-in, connections, row checks)

UTC = timezone.utc
CLAWBACK_DAYS = 1
RATES = {**common.RATES, "clawback_days": CLAWBACK_DAYS}
TARIFF_FEES = {code: fee for code, _name, _kind, fee, _speed, _addon in common.TARIFFS}
AMOUNTS = {**RATES["agent"]["tariffs"], **RATES["agent"]["addons"]}
OVERRIDE_PERCENT = Decimal(RATES["supervisor_override_percent"])
SETUP_BACK = timedelta(days=4)
HOT_FLATS = 6
MAX_ATTEMPTS = 40
LEGIT_REJECTIONS = {"flat_taken", "door_locked"}
VISIT_OUTCOMES = [("not_home", 30), ("refused", 14), ("not_interested", 10), ("callback", 10), ("lead", 8),
                  ("competitor", 7), ("no_access", 10), ("already_subscriber", 2), ("do_not_knock", 1)]
LOCKING = {"already_subscriber", "do_not_knock"}
COMPETITORS = ["Ростелеком", "Билайн", "МТС", "Мотив"]
NAMES = ["Иван Петров", "Мария Сидорова", "Олег Кузнецов", "Анна Смирнова", "Пётр Васильев"]
CANCEL_REASONS = ["Абонент передумал", "Нет технической возможности", "Переезд"]

#: every check ``run`` makes, in the order printed (the test asserts each by name)
CHECKS = ("answers", "kills", "visits", "contracts", "flats", "events", "ledger_verify", "audit_verify",
          "entries", "balances", "statements", "replays", "twins", "twin_duplicates", "event_races", "event_twins")


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def as_utc(value) -> datetime | None:
    """A stored timestamp (SQLite: naive UTC text; PostgreSQL: naive UTC datetime) → aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def agent_amount(tariff: str, addons) -> int:
    return AMOUNTS[tariff] + sum(AMOUNTS[a] for a in addons)


def override_amount(x: int) -> int:
    return int((Decimal(x) * OVERRIDE_PERCENT / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- bookkeeping of what the clients sent and were told ---------------------------------------


class Tally:
    """Thread-safe counters: every HTTP attempt's outcome, retries, connection drops."""

    def __init__(self):
        self.lock = threading.Lock()
        self.http: Counter = Counter()  # (kind, status or exception name)
        self.counts: Counter = Counter()
        self.problems: list[str] = []  # answers that are wrong in themselves

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def attempt(self, kind: str, outcome):
        with self.lock:
            self.http[(kind, str(outcome))] += 1

    def problem(self, text: str):
        with self.lock:
            self.problems.append(text)


@dataclass
class ItemRecord:
    """One sync item (a visit or a contract) and every answer it got."""

    client_id: str
    type: str
    agent: int  # index into the team
    item: dict
    answers: list = field(default_factory=list)  # (status, id, contract_number, error code, context)
    raced: bool = False  # part of a twin send

    def statuses(self) -> set[str]:
        return {a[0] for a in self.answers}

    def stored(self) -> bool:
        """The server said it holds this item (created now or before)."""
        return bool(self.statuses() & {"created", "duplicate"})


@dataclass
class ContractInfo:
    number: str
    client_id: str
    agent: int
    at: datetime
    tariff: str
    addons: list
    steps: list = field(default_factory=list)
    applied: list = field(default_factory=list)  # the EventRecords that took effect, in order
    status: str = "signed"
    probe: str | None = None  # "race" / "twin" when a probe used it


@dataclass
class EventRecord:
    event_id: str
    number: str
    event: str
    at: datetime
    reason: str | None
    expect: str  # apply | replay | refuse | differs | race | twin
    phase: str = "load"
    http: int | None = None
    answer: dict | None = None
    attempts: int = 0
    original: "EventRecord | None" = None

    def body(self) -> bytes:
        doc = {"event_id": self.event_id, "event": self.event, "at": iso(self.at)}
        if self.reason is not None:
            doc["reason"] = self.reason
        return json.dumps(doc, ensure_ascii=False).encode()


class GaveUp(RuntimeError):
    pass


def send(conn: sb.Connection, tally: Tally, kind: str, method: str, path: str, body: bytes | None,
         headers: dict, phase: str = "load") -> tuple[int, object, int]:
    """Send until an answer below 500 arrives; a dropped connection, a timeout or a 5xx is a retry
    of the very same bytes. Returns (status, JSON or None, attempts)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            status, data, _r = conn.request(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            tally.attempt(kind, type(exc).__name__)
            tally.add("dropped")
            tally.add("retries")
            time.sleep(min(0.05 * attempt, 1.0))
            continue
        tally.attempt(kind, status)
        if conn.attempts > 1:  # sync.Connection resent once on a fresh connection by itself
            tally.add("retries")
            tally.add("dropped")
            attempt += conn.attempts - 1
        if status >= 500:
            tally.add("retries")
            tally.add("5xx")
            tally.add(f"5xx {phase}")
            time.sleep(min(0.05 * attempt, 1.0))
            continue
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return status, doc, attempt
    raise GaveUp(f"{method} {path}: no answer below 500 after {MAX_ATTEMPTS} attempts")


# --- the agents' devices ------------------------------------------------------------------------


class Device:
    """One phone: an agent's own session, a keep-alive connection (and a second for twins)."""

    def __init__(self, index: int, agent: int, info: dict, port: int, rng: random.Random, shared):
        self.index, self.agent, self.info, self.port, self.rng = index, agent, info, port, rng
        self.shared = shared
        self.conn = sb.Connection(port)
        self.token: str | None = None
        self.sent_batches: list[tuple[bytes, list[ItemRecord]]] = []  # all-created batches, for replays
        first = info["buildings"][0]
        self.hot = [(first[0], f) for f in range(1, min(HOT_FLATS, first[3]) + 1)]
        self.hot_set = set(self.hot)

    def headers(self) -> dict:
        return {"Content-Type": "application/json", "X-CSRFToken": self.token}

    def _gps(self, lat: float, lon: float) -> dict:
        metres = self.rng.uniform(5, 120)
        bearing = self.rng.uniform(0, 2 * math.pi)
        dlat = metres * math.cos(bearing) / tt.M_PER_DEG_LAT
        dlon = metres * math.sin(bearing) / (tt.M_PER_DEG_LAT * math.cos(math.radians(lat)))
        return {"lat": round(lat + dlat, 6), "lon": round(lon + dlon, 6), "accuracy": round(self.rng.uniform(5, 40), 1)}

    def _door(self, hot_share: float) -> tuple[tuple, int]:
        buildings = {b[0]: b for b in self.info["buildings"]}
        if self.rng.random() < hot_share:
            building_id, flat = self.rng.choice(self.hot)
            return buildings[building_id], flat
        while True:
            b = self.rng.choice(self.info["buildings"])
            flat = self.rng.randint(1, b[3])
            if (b[0], flat) not in self.hot_set:
                return b, flat

    def visit(self) -> dict:
        b, flat = self._door(0.2)
        outcome = self.rng.choices([o for o, _w in VISIT_OUTCOMES], [w for _o, w in VISIT_OUTCOMES])[0]
        if outcome in LOCKING and (b[0], flat) in self.hot_set:
            outcome = "not_home"  # hot doors stay open for signings
        at = now() - (timedelta(hours=self.rng.uniform(1, 48)) if self.rng.random() < 0.1 else timedelta(0))
        item = {"type": "visit", "client_id": str(uuid.uuid4()), "building_id": b[0], "flat": flat,
                "outcome": outcome, "at": iso(at), "gps": self._gps(b[1], b[2])}
        if outcome == "callback":
            item["callback_at"] = iso(at + timedelta(days=1, hours=self.rng.randint(0, 8)))
        elif outcome == "lead":
            item["phone"] = f"8 (912) {self.rng.randint(100, 999)}-{self.rng.randint(10, 99)}-{self.rng.randint(10, 99)}"
        elif outcome == "competitor":
            item["competitor"] = self.rng.choice(COMPETITORS)
        if self.rng.random() < 0.2:
            item["note"] = f"заметка {self.rng.randint(1, 999)}"
        return item

    def contract(self, hot_share: float = 0.4) -> dict:
        b, flat = self._door(hot_share)
        back = self.rng.random() < 0.25
        at = now() - (timedelta(hours=self.rng.uniform(30, 60)) if back else timedelta(0))
        digits = f"{self.rng.randint(0, 9_999_999):07d}"
        phone = self.rng.choice([f"+7912{digits}", f"8 912 {digits[:3]}-{digits[3:5]}-{digits[5:]}",
                                 f"+7 (912) {digits[:3]} {digits[3:]}"])
        addons = sorted(self.rng.sample(["tv", "phone"], self.rng.choice([0, 0, 1, 2])))
        return {"type": "contract", "client_id": str(uuid.uuid4()), "building_id": b[0], "flat": flat,
                "subscriber": {"name": self.rng.choice(NAMES), "phone": phone},
                "tariff": self.rng.choice(["net100", "net300", "net500"]), "addons": addons,
                "adult_confirmed": True, "at": iso(at), "gps": self._gps(b[1], b[2]), "_e164": f"+7912{digits}"}

    def batch(self) -> list[dict]:
        return [self.contract() if self.rng.random() < 0.2 else self.visit()
                for _ in range(self.rng.choice([1, 1, 2, 3, 4]))]


class Shared:
    """State every client thread touches."""

    def __init__(self, team, port, tally):
        self.team, self.port, self.tally = team, port, tally
        self.lock = threading.Lock()
        self.items: dict[str, ItemRecord] = {}
        self.contracts: dict[str, ContractInfo] = {}
        self.new_contracts: queue.Queue = queue.Queue()
        self.progress = 0
        self.events: list[EventRecord] = []

    def register(self, items: list[dict], agent: int) -> list[ItemRecord]:
        out = []
        with self.lock:
            for item in items:
                rec = self.items.get(item["client_id"])
                if rec is None:
                    rec = self.items[item["client_id"]] = ItemRecord(item["client_id"], item["type"], agent, item)
                out.append(rec)
        return out

    def answered(self, recs: list[ItemRecord], results: list[dict], context: str) -> None:
        for rec, res in zip(recs, results):
            code = (res.get("error") or {}).get("code")
            with self.lock:
                rec.answers.append((res["status"], res.get("id"), res.get("contract_number"), code, context))
            if res.get("client_id") != rec.client_id:
                self.tally.problem(f"{context}: answer for {res.get('client_id')} in the place of {rec.client_id}")
            if res["status"] == "duplicate" and context == "sync":
                self.tally.problem(f"{context}: new {rec.type} {rec.client_id} answered duplicate on the first try")
            if res["status"] == "rejected" and code not in LEGIT_REJECTIONS:
                self.tally.problem(f"{context}: {rec.type} {rec.client_id} rejected for {code}: {res.get('error')}")
            if rec.type == "contract" and res["status"] in ("created", "duplicate") and res.get("contract_number"):
                self.contract_seen(rec, res["contract_number"])

    def contract_seen(self, rec: ItemRecord, number: str) -> None:
        with self.lock:
            if number in self.contracts:
                return
            item = rec.item
            info = ContractInfo(number, rec.client_id, rec.agent, datetime.fromisoformat(item["at"]), item["tariff"],
                                list(item["addons"]))
            self.contracts[number] = info
        self.new_contracts.put(info)


def wire(items: list[dict]) -> bytes:
    return json.dumps({"items": [{k: v for k, v in i.items() if not k.startswith("_")} for i in items]},
                      ensure_ascii=False).encode()


def sync_once(device: Device, conn: sb.Connection, body: bytes, recs: list[ItemRecord], context: str):
    tally = device.shared.tally
    status, doc, attempts = send(conn, tally, "sync", "POST", "/api/v1/sync", body, device.headers(),
                                 "probe" if context.startswith("probe") else "load")
    if status != 200 or not isinstance(doc, dict) or len(doc.get("results", [])) != len(recs):
        tally.problem(f"{context}: sync answered {status}: {str(doc)[:200]}")
        return None, attempts
    device.shared.answered(recs, doc["results"], context + (" (resent)" if attempts > 1 else ""))
    return doc["results"], attempts


def device_loop(device: Device, n: int, twin_share: float, replay_share: float) -> None:
    shared, tally = device.shared, device.shared.tally
    twin_conn = sb.Connection(device.port)
    for _ in range(n):
        r = device.rng.random()
        if r < 0.02:
            status, doc, _a = send(device.conn, tally, "zones", "GET", "/api/v1/me/zones", None, {})
            tally.add("requests zones")
            if status != 200 or not isinstance(doc, dict) or "zones" not in doc:
                tally.problem(f"GET /api/v1/me/zones answered {status}")
        elif r < 0.02 + replay_share and device.sent_batches:
            body, recs = device.rng.choice(device.sent_batches)
            tally.add("requests sync replay")
            before = [[a for a in rec.answers if a[0] in ("created", "duplicate")][0] for rec in recs]
            results, _a = sync_once(device, device.conn, body, recs, "replay")
            for rec, first, res in zip(recs, before, results or []):
                if res["status"] != "duplicate" or res.get("id") != first[1] or res.get("contract_number") != first[2]:
                    tally.problem(f"replay of {rec.type} {rec.client_id}: {res['status']} id {res.get('id')} "
                                  f"number {res.get('contract_number')}, first answer id {first[1]} number {first[2]}")
        else:
            items = device.batch()
            recs = shared.register(items, device.agent)
            body = wire(items)
            if device.rng.random() < twin_share:
                tally.add("requests sync twin")
                twin(device, twin_conn, body, recs, "load twin")
            else:
                tally.add("requests sync")
                results, _a = sync_once(device, device.conn, body, recs, "sync")
                if results and all(x["status"] == "created" for x in results):
                    device.sent_batches.append((body, recs))
        with shared.lock:
            shared.progress += 1
    twin_conn.close()


def twin(device: Device, twin_conn: sb.Connection, body: bytes, recs: list[ItemRecord], context: str) -> None:
    """The same batch on two connections at once (an impatient phone resending while the first
    attempt still runs). Each answer must say the item is stored once: created and duplicate."""
    for rec in recs:
        rec.raced = True
    twin_conn.cookie = device.conn.cookie
    barrier = threading.Barrier(2)
    out = {}

    def go(label, conn):
        barrier.wait()
        out[label] = sync_once(device, conn, body, recs, f"{context} {label}")[0]

    threads = [threading.Thread(target=go, args=(label, c)) for label, c in (("a", device.conn), ("b", twin_conn))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --- the installer ------------------------------------------------------------------------------


def plan_for(info: ContractInfo, rng: random.Random) -> list[tuple]:
    """The lifecycle an installer (and billing) will report for one contract."""
    steps: list[tuple] = []
    r = rng.random()
    if r < 0.22:
        return steps  # stays signed
    pre = rng.choice([[], [], ["paid"], ["installation_scheduled"], ["paid", "installation_scheduled"],
                      ["installation_scheduled", "installation_scheduled"]])
    steps += [("apply", e) for e in pre]
    if r < 0.32:
        return steps or [("apply", "paid")]
    if r < 0.47:
        return steps + [("apply", "cancelled")]
    late = info.at < now() - timedelta(hours=29) and rng.random() < 0.6
    steps.append(("apply", "activated", info.at + timedelta(hours=1)) if late else ("apply", "activated"))
    if rng.random() < 0.4:
        steps.append(("apply", "cancelled"))
    return steps


class Installer:
    def __init__(self, shared: Shared, key: str, rng: random.Random, agents_done: threading.Event):
        self.shared, self.key, self.rng, self.agents_done = shared, key, rng, agents_done
        self.conn = sb.Connection(shared.port)

    def headers(self) -> dict:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}

    def post(self, rec: EventRecord, conn: sb.Connection | None = None) -> EventRecord:
        tally = self.shared.tally
        status, doc, attempts = send(conn or self.conn, tally, "event", "POST",
                                     f"/api/v1/contracts/{rec.number}/events", rec.body(), self.headers(), rec.phase)
        rec.http, rec.answer, rec.attempts = status, doc, attempts
        tally.add(f"requests event {rec.expect}")
        with self.shared.lock:
            self.shared.events.append(rec)
        return rec

    def step(self, info: ContractInfo) -> None:
        kind, *rest = info.steps.pop(0)
        tally = self.shared.tally
        if kind == "apply":
            event = rest[0]
            at = rest[1] if len(rest) > 1 else now()
            reason = self.rng.choice(CANCEL_REASONS) if event == "cancelled" else None
            rec = self.post(EventRecord(str(uuid.uuid4()), info.number, event, at, reason, "apply"))
            ok = rec.http == 201 or (rec.http == 200 and rec.attempts > 1)
            if not ok:
                tally.problem(f"event {event} of {info.number} ({info.status} → {event}) answered {rec.http}: "
                              f"{str(rec.answer)[:200]}")
                return
            info.applied.append(rec)
            info.status = event
            # now and then: the same event again on purpose, a refused transition, a changed replay
            r = self.rng.random()
            if r < 0.06:
                info.steps.insert(0, ("replay", rec))
            elif r < 0.09:
                info.steps.insert(0, ("differs", rec))
            if not info.steps and info.status in ("activated", "cancelled") and self.rng.random() < 0.1:
                info.steps.append(("refuse", "paid"))
        elif kind == "replay":
            first = rest[0]
            rec = self.post(EventRecord(first.event_id, info.number, first.event, first.at, first.reason, "replay",
                                        original=first))
            if rec.http != 200 or rec.answer != first.answer:
                tally.problem(f"replay of event {first.event_id} ({info.number}) answered {rec.http}: "
                              f"{str(rec.answer)[:200]}, first answer {str(first.answer)[:200]}")
        elif kind == "differs":
            first = rest[0]
            rec = self.post(EventRecord(first.event_id, info.number, first.event, first.at - timedelta(minutes=7),
                                        first.reason, "differs", original=first))
            if rec.http != 409 or (rec.answer or {}).get("error", {}).get("code") != "replay_differs":
                tally.problem(f"changed replay of event {first.event_id} ({info.number}) answered {rec.http}: "
                              f"{str(rec.answer)[:200]}")
        elif kind == "refuse":
            rec = self.post(EventRecord(str(uuid.uuid4()), info.number, rest[0], now(), None, "refuse"))
            if rec.http != 409 or (rec.answer or {}).get("error", {}).get("code") != "transition_refused":
                tally.problem(f"{info.status} → {rest[0]} of {info.number} answered {rec.http}: "
                              f"{str(rec.answer)[:200]}")

    def loop(self) -> None:
        pending: deque[ContractInfo] = deque()
        while True:
            try:
                while True:
                    info = self.shared.new_contracts.get_nowait()
                    info.steps = plan_for(info, self.rng)
                    if info.steps:
                        pending.append(info)
            except queue.Empty:
                pass
            if not pending:
                if self.agents_done.is_set() and self.shared.new_contracts.empty():
                    return
                time.sleep(0.01)
                continue
            info = pending.popleft()
            self.step(info)
            if info.steps:
                pending.append(info)


# --- the worker killer --------------------------------------------------------------------------


def killer(server: sb.Server, shared: Shared, total: int, kills: int, log: list, done: threading.Event) -> None:
    """SIGKILL one worker (never the master) at 1/(k+1), 2/(k+1)… of the agents' requests and wait
    for the master to start its replacement."""
    master = server.proc.pid
    for k in range(1, kills + 1):
        target = total * k / (kills + 1)
        while shared.progress < target and not done.is_set():
            time.sleep(0.005)
        if done.is_set():
            return
        before = sorted(sb.children(master))
        if not before:
            log.append({"error": "no worker to kill"})
            return
        victim = before[(k - 1) % len(before)]
        t = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        after = before
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = sorted(sb.children(master))
            if victim not in after and len(after) == len(before):
                break
            time.sleep(0.02)
        log.append({"at_request": shared.progress, "killed": victim, "before": before, "after": after,
                    "restarted_in": time.perf_counter() - t, "replaced": victim not in after and len(after) == len(before)})


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Result:
    dialect: str
    checks: list = field(default_factory=list)  # (name, ok, detail)
    figures: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(ok for _n, ok, _d in self.checks)

    def check(self, name: str) -> tuple[bool, str]:
        for n, ok, detail in self.checks:
            if n == name:
                return ok, detail
        raise KeyError(name)


def build(url: str, clients: int, devices: int, per_zone: int, seed: int) -> tuple[list[dict], str, dict]:
    """The team (sync.build_team with the clock four days back), the catalogue, the rate version
    in force since then and an API key for the installer. Returns (team, key, facts)."""
    from crm.actors import CLI, set_actor
    from crm.apikeys import services as apikeys
    from crm.catalogue import services as catalogue
    from crm.clock import FixedClock
    from crm.extensions import db
    from crm.ledger import services as ledger

    setup_at = now() - SETUP_BACK
    real_make_app = common.make_app
    # build_team builds on the real clock (zones walked from today); step it back so that a phone's
    # offline queue may carry visits and signings from the last days
    common.make_app = lambda u, clock=None: real_make_app(u, clock=FixedClock(setup_at))
    try:
        team = sb.build_team(url, math.ceil(clients / devices), per_zone, seed)
    finally:
        common.make_app = real_make_app
    app = common.make_app(url, clock=FixedClock(setup_at))
    with app.app_context():
        set_actor(CLI)
        for code, name, kind, fee, speed, addon in common.TARIFFS:
            catalogue.add_tariff(None, code=code, name=name, kind=kind, monthly_fee=fee, speed_mbit=speed,
                                 is_addon=addon)
        version = ledger.add_rate_version(None, {**RATES, "effective_from": setup_at.isoformat()})
        _key, plain = apikeys.create_key(None, "installer", ["contracts:events"])
        db.session.commit()
        facts = {"rate_version_id": version.id, "setup_at": setup_at}
    common.dispose(app)
    return team, plain, facts


def run(url: str, dialect: str, *, clients: int = 20, requests: int = 3000, kills: int = 2, devices: int = 2,
        twins: float = 0.02, replays: float = 0.02, probes: int = 8, per_zone: int = 5, seed: int = 1,
        say=print) -> Result:
    """The whole exercise on an empty database at ``url``; returns every check's result."""
    started = time.perf_counter()
    result = Result(dialect)
    raw = common.Databases(dialect, "load_faults")  # only for raw_connect (SQLite: an empty temp dir)
    tmp = tempfile.mkdtemp(prefix="load_faults_")
    try:
        t = time.perf_counter()
        team, key, facts = build(url, clients, devices, per_zone, seed)
        sb.settle(raw, url)
        say(f"load and faults on {dialect}: {len(team)} agents × {devices} devices = {clients} clients, "
            f"{requests:,} agent requests, {kills} worker kills, {twins:.0%} twin sends, {replays:.0%} replays, "
            f"{probes} probes of each kind; set-up {time.perf_counter() - t:.1f} s; code {common.revision()}; "
            f"{common.load()}")
        server = sb.Server("load", "app:create_app()", common.ROOT, url, tmp,
                           SimpleNamespace(workers=2, worker_class="sync", threads=1), {})
        kill_log: list[dict] = []
        tally = Tally()
        shared = Shared(team, server.port, tally)
        try:
            server.wait_ready("/login")
            workers_before = sorted(server.workers)
            rng = random.Random(seed)
            devs = [Device(i, i % len(team), team[i % len(team)], server.port, random.Random(seed * 1000 + i), shared)
                    for i in range(clients)]
            for d in devs:
                d.token = sb.sign_in(d.conn, d.info["login"])
            quota = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
            agents_done, load_done = threading.Event(), threading.Event()
            installer = Installer(shared, key, random.Random(seed * 7919), agents_done)
            errors: list[str] = []

            def guarded(fn, *args):
                try:
                    fn(*args)
                except Exception as exc:  # a client that gave up: reported, and the run goes on
                    errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")

            t = time.perf_counter()
            threads = [threading.Thread(target=guarded, args=(device_loop, d, q, twins, replays))
                       for d, q in zip(devs, quota)]
            inst = threading.Thread(target=guarded, args=(installer.loop,))
            kill_thread = threading.Thread(target=guarded, args=(killer, server, shared, requests, kills, kill_log,
                                                                 load_done))
            for th in threads + [inst, kill_thread]:
                th.start()
            for th in threads:
                th.join()
            agents_done.set()
            inst.join()
            load_done.set()
            kill_thread.join()
            load_seconds = time.perf_counter() - t

            # probes, on a quiet server
            t = time.perf_counter()
            probe_log = run_probes(shared, devs, installer, probes, rng)
            probe_seconds = time.perf_counter() - t
            workers_after = sorted(sb.children(server.proc.pid))
            for d in devs:
                d.conn.close()
        finally:
            server.stop()
        server_log = scan_log(server.log_path)

        result.figures = figures = {
            "load_seconds": load_seconds, "probe_seconds": probe_seconds, "http": dict(tally.http),
            "counts": dict(tally.counts), "kills": kill_log, "workers_before": workers_before,
            "workers_after": workers_after, "errors": errors, "server_log": server_log,
        }
        report_traffic(say, figures, shared)
        checks = verify(url, dialect, raw, team, shared, facts, tally, kill_log, kills, errors, probe_log)
        result.checks = checks
        rows = result.figures["rows"] = row_counts(raw, url)
        say("rows checked: " + ", ".join(f"{table} {n:,}" for table, n in rows.items()))
        for name, ok, detail in checks:
            say(f"check {name}: {'ok' if ok else 'FAILED'} — {detail}")
        result.seconds = time.perf_counter() - started
        say(f"{'all checks passed' if result.ok else 'SOME CHECKS FAILED'} in {result.seconds:.1f} s; {common.load()}")
        return result
    finally:
        raw.cleanup()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def run_probes(shared: Shared, devs: list[Device], installer: Installer, probes: int, rng: random.Random) -> dict:
    """On a quiet server: twin sync batches, racing activation/cancellation, twin events."""
    log = {"twin_batches": [], "races": [], "event_twins": []}
    # 1. the same batch (a contract on a fresh door and a visit) twice at once
    for i in range(probes):
        device = devs[i % len(devs)]
        items = [device.contract(hot_share=0.0), device.visit()]
        if i % 2:
            items.reverse()  # the visit first: then it is the visit that meets its twin's uncommitted row
        recs = shared.register(items, device.agent)
        conn = sb.Connection(device.port)
        twin(device, conn, wire(items), recs, "probe twin")
        conn.close()
        log["twin_batches"].append(recs)
        shared.tally.add("requests sync twin probe")
    # 2. two systems report on one signed contract at once: activation and cancellation
    untouched = [c for c in shared.contracts.values() if c.status == "signed" and not c.applied and c.probe is None]
    rng.shuffle(untouched)
    conns = [sb.Connection(shared.port), sb.Connection(shared.port)]
    for info in untouched[:probes]:
        info.probe = "race"
        recs = [EventRecord(str(uuid.uuid4()), info.number, "activated", now(), None, "race", phase="probe"),
                EventRecord(str(uuid.uuid4()), info.number, "cancelled", now(), "Абонент отказался", "race",
                            phase="probe")]
        _together([lambda r=recs[0]: installer.post(r, conns[0]), lambda r=recs[1]: installer.post(r, conns[1])])
        log["races"].append((info, recs))
    # 3. the same event twice at once
    for info in untouched[probes:2 * probes]:
        info.probe = "twin"
        event_id, at = str(uuid.uuid4()), now()
        recs = [EventRecord(event_id, info.number, "activated", at, None, "twin", phase="probe") for _ in range(2)]
        _together([lambda r=recs[0]: installer.post(r, conns[0]), lambda r=recs[1]: installer.post(r, conns[1])])
        log["event_twins"].append((info, recs))
    for c in conns:
        c.close()
    return log


def _together(fns) -> None:
    barrier = threading.Barrier(len(fns))

    def go(fn):
        barrier.wait()
        fn()

    threads = [threading.Thread(target=go, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


EXCEPTION_RE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Detected|Violation|Conflict)\b")


def scan_log(path: str) -> dict:
    """Unhandled errors the workers logged (Flask logs them with their traceback)."""
    with open(path, errors="replace") as fh:
        lines = fh.read().splitlines()
    errors, current = [], None
    for line in lines:
        if "unhandled error on" in line:
            current = {"where": line.split("unhandled error on", 1)[1].strip(), "exception": ""}
            errors.append(current)
        elif current is not None and EXCEPTION_RE.match(line):
            current["exception"] = line.strip()[:300]
    return {"unhandled": errors, "locked": sum("database is locked" in l for l in lines),
            "sigkill": sum("SIGKILL" in l for l in lines), "timeouts": sum("WORKER TIMEOUT" in l for l in lines)}


def report_traffic(say, fig: dict, shared: Shared) -> None:
    counts = fig["counts"]
    http = Counter()
    for (kind, status), n in fig["http"].items():
        http[f"{kind} {status}"] += n
    sent = sum(v for k, v in counts.items() if k.startswith("requests "))
    attempts = sum(http.values())
    say(f"load: {fig['load_seconds']:.1f} s; probes {fig['probe_seconds']:.1f} s; requests sent {sent:,} "
        f"({', '.join(f'{k[9:]} {v:,}' for k, v in sorted(counts.items()) if k.startswith('requests '))}); "
        f"HTTP attempts {attempts:,}; retries {counts.get('retries', 0)} (dropped connections "
        f"{counts.get('dropped', 0)}, 5xx {counts.get('5xx', 0)})")
    say("HTTP status counts: " + ", ".join(f"{k} × {v:,}" for k, v in sorted(http.items())))
    items = Counter()
    for rec in shared.items.values():
        for a in rec.answers:
            items[f"{rec.type} {a[0]}" + (f" ({a[3]})" if a[3] else "")] += 1
    say("item answers: " + ", ".join(f"{k} × {v:,}" for k, v in sorted(items.items())))
    say(f"workers before {fig['workers_before']}, after {fig['workers_after']}; kills: " + "; ".join(
        f"pid {k['killed']} at request {k['at_request']:,} → workers {k['after']} (replacement forked after "
        f"{k['restarted_in']:.2f} s)"
        if "killed" in k else k.get("error", "?") for k in fig["kills"]))
    log = fig["server_log"]
    say(f"server log: {len(log['unhandled'])} unhandled errors, {log['locked']} 'database is locked', "
        f"{log['sigkill']} SIGKILL notices, {log['timeouts']} worker timeouts")
    for kind, n in Counter(f"{e['where']}: {e['exception']}" for e in log["unhandled"]).most_common(8):
        say(f"    {n} × {kind}")
    for e in fig["errors"]:
        say(f"    client error: {e}")


# --- the checks ---------------------------------------------------------------------------------


def expected_entries(history: list[tuple[str, datetime]], agent_id: int, sup_id: int, x: int) -> list[tuple]:
    """What PRODUCT.md §4 item 3 writes for a contract with this event history:
    (kind, bucket, beneficiary, amount), plus whether the history follows the status table."""
    from crm.contracts import lifecycle

    o = override_amount(x)
    out = [("accrual", "pending", agent_id, x), ("override", "pending", sup_id, o)]
    status, activated_at = "signed", None
    for event, at in history:
        if not lifecycle.allowed(status, event):
            raise ValueError(f"{status} → {event} is not in the status table")
        if event == "activated":
            activated_at = at
            out += [("release", "pending", agent_id, -x), ("earned", "payable", agent_id, x),
                    ("release", "pending", sup_id, -o), ("earned", "payable", sup_id, o)]
        elif event == "cancelled":
            if status != "activated":
                out += [("void", "pending", agent_id, -x), ("void", "pending", sup_id, -o)]
            elif at - activated_at <= timedelta(days=CLAWBACK_DAYS):
                out += [("clawback", "payable", agent_id, -x), ("clawback", "payable", sup_id, -o)]
        status = event
    return out


def verify(url, dialect, raw, team, shared: Shared, facts, tally: Tally, kill_log, kills, errors, probe_log):
    checks = []

    def add(name, problems, detail_ok):
        checks.append((name, not problems, detail_ok if not problems else "; ".join(problems[:6])
                       + (f" … and {len(problems) - 6} more" if len(problems) > 6 else "")))

    load_http = Counter()
    for (kind, status), n in tally.http.items():
        load_http[status] += n
    # answers: every request answered, every answer right in itself, no 5xx outside the probes
    problems = list(errors) + [p for p in tally.problems
                               if "twin" not in p and not p.startswith(("replay", "changed replay"))]
    load_5xx = tally.counts.get("5xx load", 0)
    if load_5xx > 0:
        problems.append(f"{load_5xx} answers 5xx during the load (see the server log lines above)")
    add("answers", problems, f"{sum(load_http.values()):,} HTTP attempts, every request answered in the end, "
        f"every answer as the API promises, no 5xx during the load")

    # kills
    problems = []
    done = [k for k in kill_log if "killed" in k]
    if len(done) != kills:
        problems.append(f"{len(done)} kills done of {kills}")
    problems += [f"worker {k['killed']} not replaced: workers {k['after']}" for k in done if not k["replaced"]]
    replaced = ", ".join(f"{k['killed']} → {sorted(set(k['after']) - set(k['before']))}" for k in done)
    add("kills", problems, f"{len(done)} workers killed with SIGKILL mid-run, each replaced by the master "
        f"({replaced})")

    conn = raw.raw_connect(url)
    try:
        cur = conn.cursor()
        q = lambda sql: cur.execute(sql).fetchall()  # noqa: E731  (no parameters: '%' stays literal)

        # visits
        rows = [r for r in sb.stored_rows(raw, url) if not r[0].endswith("#signed")]
        visits = [rec for rec in shared.items.values() if rec.type == "visit"]
        sent = []
        problems = []
        for rec in visits:
            ids = {a[1] for a in rec.answers if a[0] in ("created", "duplicate")}
            if len(ids) > 1:
                problems.append(f"visit {rec.client_id} answered with ids {sorted(ids)}")
            if rec.stored():
                sent.append(sb.Sent("sync", "load", rec.agent, rec.client_id, rec.item, b"", False,
                                    id=next(iter(ids)) if ids else None))
        problems += sb.check_rows(rows, sent, team)
        rejected = sum(1 for rec in visits if not rec.stored())
        add("visits", problems, f"{len(visits):,} visit client ids sent, {len(sent):,} answered created/duplicate "
            f"and {rejected:,} rejected; {len(rows):,} visit rows: each stored one exactly once and as sent, "
            f"none of the rejected")

        # contracts
        problems = []
        contract_rows = q("SELECT c.client_id, c.number, c.agent_id, c.supervisor_id, c.building_id, c.flat, "
                          "c.subscriber_name, c.phone, t.code, c.at, c.rate_version_id, c.monthly_fee, c.id, c.status "
                          "FROM contracts c JOIN tariffs t ON t.id = c.tariff_id ORDER BY c.id")
        addons = defaultdict(list)
        for cid, code in q("SELECT a.contract_id, t.code FROM contract_addons a JOIN tariffs t ON t.id = a.tariff_id"):
            addons[cid].append(code)
        signed_visits = {r[0]: r for r in q("SELECT client_id, contract_id, outcome, agent_id, building_id, flat, at "
                                            "FROM visits WHERE client_id LIKE '%#signed'")}
        per_client = Counter(r[0] for r in contract_rows)
        problems += [f"contract client id {c} stored {n} times" for c, n in per_client.items() if n > 1]
        by_client = {r[0]: r for r in contract_rows}
        contract_items = [rec for rec in shared.items.values() if rec.type == "contract"]
        stored = [rec for rec in contract_items if rec.stored()]
        for rec in contract_items:
            row = by_client.get(rec.client_id)
            numbers = {a[2] for a in rec.answers if a[0] in ("created", "duplicate")}
            if not rec.stored():
                if row is not None:
                    problems.append(f"contract {rec.client_id} answered only {sorted(rec.statuses())} but stored "
                                    f"as {row[1]}")
                continue
            if row is None:
                problems.append(f"contract {rec.client_id} answered {sorted(rec.statuses())} but not stored")
                continue
            item, agent = rec.item, team[rec.agent]
            want = {"number": numbers.pop() if len(numbers) == 1 else numbers, "agent": agent["id"],
                    "supervisor": agent["supervisor_id"], "building": item["building_id"], "flat": item["flat"],
                    "name": item["subscriber"]["name"], "phone": item["_e164"], "tariff": item["tariff"],
                    "at": datetime.fromisoformat(item["at"]), "rate_version": facts["rate_version_id"],
                    "fee": TARIFF_FEES[item["tariff"]] + sum(TARIFF_FEES[a] for a in item["addons"]),
                    "addons": sorted(item["addons"])}
            got = {"number": row[1], "agent": row[2], "supervisor": row[3], "building": row[4], "flat": row[5],
                   "name": row[6], "phone": row[7], "tariff": row[8], "at": as_utc(row[9]), "rate_version": row[10],
                   "fee": row[11], "addons": sorted(addons[row[12]])}
            if got != want:
                problems.append(f"contract {rec.client_id}: " + ", ".join(
                    f"{k} {got[k]!r} (sent/answered {want[k]!r})" for k in want if got[k] != want[k]))
            v = signed_visits.get(rec.client_id + "#signed")
            if v is None or v[1] != row[12] or v[2] != "signed" or v[3] != agent["id"] or (v[4], v[5]) != (row[4], row[5]) \
                    or as_utc(v[6]) != as_utc(row[9]):
                problems.append(f"contract {row[1]}: its signed visit is {v}")
        known = {rec.client_id for rec in contract_items}
        problems += [f"contract {r[1]} with client id {r[0]} nobody sent" for r in contract_rows if r[0] not in known]
        problems += [f"signed visit {k} without its contract" for k in signed_visits if k[:-7] not in by_client]
        add("contracts", problems, f"{len(contract_items):,} contract client ids sent, {len(stored):,} answered "
            f"created/duplicate, {len(contract_items) - len(stored):,} only rejected; {len(contract_rows):,} contract "
            f"rows: each client id at most once, each answered one stored once as sent with its signed visit")

        # flats
        doubled = q("SELECT building_id, flat, COUNT(*) FROM contracts WHERE status <> 'cancelled' "
                    "GROUP BY building_id, flat HAVING COUNT(*) > 1")
        active = q("SELECT COUNT(*) FROM contracts WHERE status <> 'cancelled'")[0][0]
        taken = sum(1 for rec in contract_items for a in rec.answers if a[3] == "flat_taken")
        by_status = Counter(r[13] for r in contract_rows)
        add("flats", [f"building {b} flat {f}: {n} active contracts" for b, f, n in doubled],
            f"{active:,} active contracts ({', '.join(f'{k} {v}' for k, v in sorted(by_status.items()))}), no flat "
            f"with two; {taken:,} signings refused as flat_taken")

        # events
        problems = []
        event_rows = q("SELECT e.event_key, c.number, e.event, e.from_status, e.to_status, e.at, e.reason, e.id "
                       "FROM contract_events e JOIN contracts c ON c.id = e.contract_id ORDER BY e.id")
        per_key = Counter(r[0] for r in event_rows)
        problems += [f"event {k} stored {n} times" for k, n in per_key.items() if n > 1]
        by_key = {r[0]: r for r in event_rows}
        history = defaultdict(list)
        for r in event_rows:
            if r[0].startswith("api:"):
                history[r[1]].append(r)
        sent_ids = {rec.event_id for rec in shared.events}
        problems += [f"event {k} stored, nobody sent it" for k in by_key if k.startswith("api:") and k[4:] not in sent_ids]
        applied = [rec for rec in shared.events if rec.http in (200, 201) and rec.expect in ("apply", "race", "twin")]
        for rec in shared.events:
            row = by_key.get(f"api:{rec.event_id}")
            if rec.http in (200, 201):
                if row is None:
                    problems.append(f"event {rec.event_id} answered {rec.http} but not stored")
                elif (row[1], row[2], as_utc(row[5])) != (rec.number, rec.event, rec.at if rec.expect != "differs"
                                                          else rec.original.at):
                    problems.append(f"event {rec.event_id} stored as {row[1:3]} at {row[5]}")
            elif rec.expect in ("refuse", "race") and row is not None and not any(
                    o.event_id == rec.event_id and o.http in (200, 201) for o in shared.events):
                problems.append(f"event {rec.event_id} answered {rec.http} but stored")
        race_numbers = {info.number for info, _r in probe_log["races"]}
        for number, info in shared.contracts.items():
            rows_ = history.get(number, [])
            if number in race_numbers:
                continue  # the race probe's own check
            status = "signed"
            for r in rows_:
                if r[3] != status:
                    problems.append(f"{number}: event {r[0]} recorded from {r[3]}, the contract was {status}")
                status = r[4]
            db_status = next((r[13] for r in contract_rows if r[1] == number), None)
            want_status = info.status if info.probe is None else "activated"
            if db_status != status or db_status != want_status:
                problems.append(f"{number}: status {db_status}, history ends at {status}, the installer left it "
                                f"{want_status}")
        add("events", problems, f"{len(shared.events):,} events sent ({len(applied):,} applied, the rest replays and "
            f"refusals), {sum(len(v) for v in history.values()):,} stored: each event_id at most once, every "
            f"applied one stored as sent, every contract's history following the status table and ending where "
            f"the installer left it")

        # the chains, through the CLI
        for name, flag in (("ledger_verify", []), ("audit_verify", ["--audit"])):
            out = cli_verify(url, flag)
            table = "audit_events" if flag else "ledger_entries"
            count = q(f"SELECT COUNT(*) FROM {table}")[0][0]
            prefix = "audit ok: " if flag else "ledger ok: "
            last = (out.stdout.strip().splitlines() or [""])[-1]
            ok = out.returncode == 0 and last.startswith(f"{prefix}{count} entries")
            command = "flask ledger verify" + (" --audit" if flag else "")
            add(name, [] if ok else [f"{command}: exit {out.returncode}: {out.stdout.strip()[-300:]} "
                                     f"{out.stderr.strip()[-300:]} ({count} rows)"],
                f"`{command}` exit 0: {last}")

        # entries per contract
        problems = []
        entry_rows = q("SELECT e.position, e.kind, e.bucket, e.beneficiary_id, e.amount, c.number, e.rate_version_id, "
                       "e.ref_position, e.period FROM ledger_entries e LEFT JOIN contracts c ON c.id = e.contract_id "
                       "ORDER BY e.position")
        by_contract = defaultdict(list)
        for r in entry_rows:
            by_contract[r[5]].append(r)
        if None in by_contract:
            problems.append(f"{len(by_contract[None])} entries without a contract")
        model: Counter = Counter()  # (beneficiary, bucket) → what the clients were told, summed
        twin_recs = {info.number: recs for info, recs in probe_log["event_twins"]}
        infos = {**shared.contracts}
        rows_by_number = {r[1]: r for r in contract_rows}
        for number, row in rows_by_number.items():
            info = infos.get(number)
            if info is None:
                problems.append(f"contract {number} in the database, no client was told of it")
                continue
            agent = team[info.agent]
            x = agent_amount(info.tariff, info.addons)
            if number in race_numbers:
                continue
            # what the installer was told took effect (the events check ties it to the recorded history)
            told = [(r.event, r.at) for r in info.applied]
            if info.probe == "twin":
                told = [(twin_recs[number][0].event, twin_recs[number][0].at)]
            try:
                want = expected_entries(told, agent["id"], agent["supervisor_id"], x)
            except ValueError as exc:
                problems.append(f"{number}: {exc}")
                continue
            got = [(r[1], r[2], r[3], r[4]) for r in by_contract.get(number, [])]
            if Counter(got) != Counter(want):
                problems.append(f"{number} ({row[13]}): entries {sorted(Counter(got).items())}, the rules give "
                                f"{sorted(Counter(want).items())}")
            bad_version = [r[0] for r in by_contract.get(number, []) if r[6] != facts["rate_version_id"]]
            if bad_version:
                problems.append(f"{number}: entries {bad_version} not on the locked rate version")
            for kind, bucket, ben, amount in want:
                model[(ben, bucket)] += amount
        resolved = Counter(r[7] for r in entry_rows if r[1] in ("release", "void") and r[5] not in race_numbers)
        problems += [f"entry {pos} resolved {n} times" for pos, n in resolved.items() if n > 1]
        kinds = Counter(r[1] for r in entry_rows)
        add("entries", problems, f"{len(entry_rows):,} entries ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})"
            f" for {len(rows_by_number):,} contracts: each contract's exactly what its history calls for at the "
            f"locked rate; no accrual resolved twice")

        # balances: the app's, SQL's, and the sum of what the clients were told
        from crm.clock import Clock
        from crm.extensions import db
        from crm.finance import services as finance
        from crm.ledger import services as ledger
        from crm.users.models import User

        sql_balance = Counter()
        sql_period = Counter()
        sql_kind = Counter()
        counts_period = Counter()
        for r in q("SELECT beneficiary_id, bucket, SUM(amount) FROM ledger_entries GROUP BY beneficiary_id, bucket"):
            sql_balance[(r[0], r[1])] = int(r[2])
        for r in q("SELECT beneficiary_id, period, bucket, kind, SUM(amount), COUNT(*) FROM ledger_entries "
                   "GROUP BY beneficiary_id, period, bucket, kind"):
            sql_period[(r[0], r[1], r[2])] += int(r[4])
            sql_kind[(r[0], r[1], r[3])] += int(r[4])
            counts_period[(r[0], r[1])] += int(r[5])
        for info, _recs in probe_log["races"]:  # their own check judges them; count what they wrote
            for r in by_contract.get(info.number, []):
                model[(r[3], r[2])] += r[4]
        beneficiaries = sorted({a["id"] for a in team} | {a["supervisor_id"] for a in team})
        late = defaultdict(set)  # (agent, month) → contracts cancelled too late to claw back, as the installer saw it
        for number, info in shared.contracts.items():
            activated = [r.at for r in info.applied if r.event == "activated"]
            cancels = [r.at for r in info.applied if r.event == "cancelled"]
            if activated and cancels and cancels[-1] - activated[-1] > timedelta(days=CLAWBACK_DAYS):
                late[(team[info.agent]["id"], ledger_month(cancels[-1]))].add(number)
        # the pending pipeline: accruals and overrides no release or void refers to
        referred = {r[7] for r in entry_rows if r[1] in ("release", "void")}
        pipeline = Counter()
        for r in entry_rows:
            if r[1] in ("accrual", "override") and r[0] not in referred:
                pipeline[r[3]] += r[4]
    finally:
        conn.close()

    app = common.make_app(url, clock=Clock())
    problems, statements = [], 0
    with app.app_context():
        balances = ledger.balances(beneficiaries)
        for ben in beneficiaries:
            for bucket in ("pending", "payable"):
                a, s, m = balances[ben][bucket], sql_balance[(ben, bucket)], model[(ben, bucket)]
                if not a == s == m:
                    problems.append(f"user {ben} {bucket}: the app says {a}, SQL sums {s}, the answers add up to {m}")
        add("balances", problems, f"{len(beneficiaries)} beneficiaries × 2 buckets: crm.ledger.services.balances = "
            f"SQL sum of their entries = the sum of what the clients were told")
        problems = []
        periods = sorted({p for (_b, p, _k) in sql_period})
        for ben in beneficiaries:
            user = db.session.get(User, ben)
            for period in periods:
                st = finance.statement(user, period)
                statements += 1
                got = Counter()
                for e in st.entries:
                    got[e.bucket] += e.amount
                f = st.figures
                want = {"entries": counts_period[(ben, period)],
                        "pending": sql_period[(ben, period, "pending")],
                        "payable": sql_period[(ben, period, "payable")],
                        "net": sum(v for (b, p, k), v in sql_period.items() if b == ben and p <= period and k == "payable"),
                        "pending_total": sum(v for (b, p, k), v in sql_period.items()
                                             if b == ben and p <= period and k == "pending"),
                        "clawbacks": sql_kind[(ben, period, "clawback")],
                        "earned": sql_kind[(ben, period, "earned")],
                        "pipeline": pipeline[ben],
                        "late": late.get((ben, period), set())}
                have = {"entries": len(st.entries), "pending": got["pending"], "payable": got["payable"],
                        "net": f.net, "pending_total": f.pending, "clawbacks": f.clawbacks,
                        "earned": f.accruals_earned + f.overrides_earned, "pipeline": st.pipeline_total,
                        "late": {c.number for c in st.late_cancellations} - race_numbers}
                if f.pending_moves != got["pending"] or f.payable_moves != got["payable"]:
                    problems.append(f"user {ben} {period}: figures move pending {f.pending_moves} payable "
                                    f"{f.payable_moves}, its entries {dict(got)}")
                diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
                if diff:
                    problems.append(f"user {ben} {period}: " + ", ".join(f"{k} {h} (SQL {w})" for k, (h, w) in diff.items()))
        n_late = sum(len(v) for v in late.values())
        add("statements", problems, f"{statements} statements ({len(beneficiaries)} beneficiaries × months "
            f"{', '.join(periods)}): entries, totals per bucket, net, pending, earned, clawbacks, pipeline and "
            f"the {n_late} cancellations too late to claw back equal to SQL over their entries and to what the "
            f"installer did")
    common.dispose(app)

    # replays, twins, races
    problems = [p for p in tally.problems if p.startswith("replay")]
    n_replays = tally.counts.get("requests sync replay", 0) + tally.counts.get("requests event replay", 0)
    problems += [p for p in tally.problems if p.startswith("changed replay")]
    add("replays", problems, f"{n_replays} batches and events sent again on purpose: every item duplicate with "
        f"the first answer's ids, every event the original answer; changed replays refused")

    problems = [p for p in tally.problems if "twin" in p]
    twin_items = [rec for rec in shared.items.values() if rec.raced]
    told_rejected, created_twice = Counter(), []
    for rec in twin_items:
        statuses = [a[0] for a in rec.answers]
        ids = {a[1] for a in rec.answers if a[0] != "rejected"}
        numbers = {a[2] for a in rec.answers if a[0] != "rejected"}
        if "rejected" in statuses and rec.stored():
            own = [a for a in rec.answers if a[0] == "rejected"][0]
            told_rejected[f"{rec.type} {own[3]}"] += 1
            problems.append(f"{rec.type} {rec.client_id} ({(rec.item.get('building_id'), rec.item.get('flat'))}) "
                            f"stored as {numbers or ids}, answers {', '.join(statuses)}: one twin was told rejected "
                            f"{own[3]} ({own[4]})")
        if statuses.count("created") > 1:
            created_twice.append(f"{rec.type} {rec.client_id}: both twins answered created (id {sorted(ids)})")
        if len(ids) > 1 or len(numbers) > 1:
            problems.append(f"{rec.type} {rec.client_id}: twins name different rows {ids} {numbers}")
    if told_rejected:
        problems.insert(0, "stored items whose twin was told rejected: "
                        + ", ".join(f"{k} × {v}" for k, v in sorted(told_rejected.items())))
    add("twins", problems, f"{len(twin_items)} items sent twice at once (load and probes): stored once, no twin "
        f"of a stored item told rejected, both answers naming the same row")
    if created_twice:
        created_twice.insert(0, f"{len(created_twice)} of {len(twin_items)} items sent twice at once were answered "
                                f"created twice (one row; the later answer should be duplicate)")
    add("twin_duplicates", created_twice, f"{len(twin_items)} items sent twice at once: one answer created, the "
        f"other duplicate")

    problems = []
    conn = raw.raw_connect(url)
    try:
        cur = conn.cursor()
        for info, recs in probe_log["races"]:
            act, can = recs
            rows_ = cur.execute(
                "SELECT e.event, e.from_status, e.to_status, e.at FROM contract_events e JOIN contracts c "
                "ON c.id = e.contract_id WHERE c.number = " + ("?" if dialect == "sqlite" else "%s") +
                " AND substr(e.event_key, 1, 4) = 'api:' ORDER BY e.id", (info.number,)).fetchall()
            entries = cur.execute(
                "SELECT e.kind, e.bucket, e.beneficiary_id, e.amount FROM ledger_entries e JOIN contracts c "
                "ON c.id = e.contract_id WHERE c.number = " + ("?" if dialect == "sqlite" else "%s"),
                (info.number,)).fetchall()
            answers = f"activated {act.http}, cancelled {can.http}"
            chain_ok = all(r[1] == (rows_[i - 1][2] if i else "signed") for i, r in enumerate(rows_))
            if not chain_ok:
                problems.append(f"{info.number} ({answers}): history " + " ; ".join(f"{r[1]}→{r[2]}" for r in rows_))
            agent = team[info.agent]
            try:
                want = expected_entries([(r[0], as_utc(r[3])) for r in rows_], agent["id"], agent["supervisor_id"],
                                        agent_amount(info.tariff, info.addons))
            except ValueError as exc:
                want = None
                problems.append(f"{info.number}: {exc}")
            got = [tuple(r) for r in entries]
            if want is not None and Counter(got) != Counter(want):
                problems.append(f"{info.number} ({answers}): entries {sorted(got)}, the rules give {sorted(want)}")
            legit = (act.http == 201 and can.http == 201) or (can.http == 201 and act.http == 409)
            if not legit:
                problems.append(f"{info.number}: answers {answers}")
    finally:
        conn.close()
    both = sum(1 for _i, (a, c) in probe_log["races"] if a.http == 201 and c.http == 201)
    broken = len({p.split(" ", 1)[0] for p in problems})
    if problems:
        problems.insert(0, f"{broken} of {len(probe_log['races'])} races went wrong ({both} answered 201 to both "
                           f"events)")
    add("event_races", problems, f"{len(probe_log['races'])} signed contracts activated and cancelled at once by "
        f"two clients: one order or the other, history following the status table, entries as it calls for")

    problems = []
    for info, recs in probe_log["event_twins"]:
        codes = sorted(r.http for r in recs)
        if codes != [200, 201] or recs[0].answer != recs[1].answer or any(r.attempts > 1 for r in recs):
            problems.append(f"{info.number}: the same event twice at once answered {codes} after "
                            f"{[r.attempts for r in recs]} attempts (a 5xx or a drop before)" + (
                                "" if recs[0].answer == recs[1].answer else ", different answers"))
    add("event_twins", problems, f"{len(probe_log['event_twins'])} events sent twice at once: 201 and 200 with the "
        f"same answer, no 5xx")
    order = {n: i for i, n in enumerate(CHECKS)}
    return sorted(checks, key=lambda c: order[c[0]])


def row_counts(raw, url: str) -> dict[str, int]:
    conn = raw.raw_connect(url)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("visits", "contracts", "contract_events", "ledger_entries", "audit_events")}
    finally:
        conn.close()


def ledger_month(at: datetime) -> str:
    return common.month_of(at)


def cli_verify(url: str, flags: list[str]) -> subprocess.CompletedProcess:
    flask = os.path.join(common.ROOT, ".venv", "bin", "flask")
    cmd = ([flask] if os.path.exists(flask) else [sys.executable, "-m", "flask"]) + ["--app", "app", "ledger",
                                                                                    "verify", *flags]
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": sb.SECRET}
    return subprocess.run(cmd, cwd=common.ROOT, env=env, capture_output=True, text=True, timeout=300)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", help="sqlite:///FILE or postgresql://…/NAME (new or empty)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent agent clients (devices)")
    parser.add_argument("--requests", type=int, default=3000, help="agent requests in all")
    parser.add_argument("--kills", type=int, default=2, help="workers killed with SIGKILL during the load")
    parser.add_argument("--devices", type=int, default=2, help="devices (sessions) per agent")
    parser.add_argument("--twins", type=float, default=0.02, help="share of batches sent twice at once")
    parser.add_argument("--replays", type=float, default=0.02, help="share of requests that resend an old batch")
    parser.add_argument("--probes", type=int, default=8, help="twin batches, event races and event twins after the load")
    parser.add_argument("--buildings-per-zone", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    dialect = tt.dialect_of(args.database_url, args.db)
    with tt.url_databases(dialect, "load") as dbs:
        url = dbs.base(args.database_url)
        result = run(url, dialect, clients=args.clients, requests=args.requests, kills=args.kills,
                     devices=args.devices, twins=args.twins, replays=args.replays, probes=args.probes,
                     per_zone=args.buildings_per_zone, seed=args.seed)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
