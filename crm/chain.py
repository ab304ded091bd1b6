"""Append-only, hash-chained tables: the mechanism shared by the audit log and the ledger.

Each row carries a gap-free ``position``, the previous row's hash and its own
hash: SHA-256 over the previous hash (32 bytes) and a lean canonical encoding
of the row. The database refuses UPDATE, DELETE and out-of-order INSERTs
(``guard_ddl``); the ORM refuses them earlier (``install_orm_guard``); and
``verify`` recomputes every link so a row edited behind the triggers' back is
found at its position. A published head ``POS:HEX`` catches even a chain that
was rewritten and re-hashed from the start.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import BigInteger, String, event, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

ZERO_HASH = "0" * 64
#: ``pg_advisory_xact_lock`` key taken by every chain writer ("Doorstep" in ASCII, 63 bits).
CHAIN_LOCK_KEY = 0x446F6F7273746570 & 0x7FFFFFFFFFFFFFFF
HEAD_RE = re.compile(r"^(\d+):([0-9a-fA-F]{64})$")


class AppendOnlyError(RuntimeError):
    """Somebody tried to change or remove a chained row."""


class ChainConflict(ValueError):
    """An idempotency key was replayed with different data; names the field."""

    def __init__(self, key: str, field: str):
        super().__init__(f"{key}: replay differs in {field}")
        self.key = key
        self.field = field


_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a chained model reachable as ``flask ledger verify`` target ``name``."""

    def decorator(cls):
        _REGISTRY[name] = cls
        return cls

    return decorator


def registered(name: str):
    return _REGISTRY.get(name)


class ChainMixin:
    """Columns every chained table has. Subclasses list their hashed columns."""

    #: Columns that go into the hash besides position and prev_hash, in any order.
    __chain_fields__: ClassVar[tuple[str, ...]] = ()
    #: Columns that may legitimately differ on an idempotent replay.
    __replay_ignore__: ClassVar[tuple[str, ...]] = ("recorded_at",)

    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)

    def chain_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__chain_fields__}


# --- pure part: encoding and hashing ------------------------------------------------


def _encode(value: Any) -> str:
    """A value as a length-prefixed token; ``~`` is NULL (a real token starts with a digit).

    Only types that read back from either database exactly as written: money is
    integer minor units, never Decimal or float.
    """
    if value is None:
        return "~"
    if isinstance(value, bool):
        text_ = "1" if value else "0"
    elif isinstance(value, (int, str)):
        text_ = str(value)
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a chained row")
        if value.utcoffset():
            value = value.astimezone(timezone.utc)
        text_ = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a chained row")
    return f"{len(text_)}:{text_}"


def _check_types(entry) -> None:
    """Refuse a value whose column would hand back something else (e.g. "5" in an integer)."""
    table = type(entry).__table__
    for name in entry.__chain_fields__:
        value = getattr(entry, name)
        if value is None:
            continue
        expected = _python_type(table.c[name].type)
        if expected is None:
            continue
        if expected is int and isinstance(value, bool):
            raise TypeError(f"{table.name}.{name}: bool given for an integer")
        if not isinstance(value, expected):
            raise TypeError(f"{table.name}.{name}: {type(value).__name__} given for {expected.__name__}")


def canonical(position: int, idempotency_key: str, values: dict[str, Any]) -> bytes:
    """The bytes that are hashed: position, key, then ``name=token`` for every field in name
    order, separated by newlines, UTF-8. Lean on purpose: verify runs over millions of rows."""
    parts = [str(position), _encode(idempotency_key)]
    parts += [f"{name}={_encode(values[name])}" for name in sorted(values)]
    return "\n".join(parts).encode("utf-8")


def link_hash(prev_hash: str, payload: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + payload).hexdigest()


def parse_head(value: str) -> tuple[int, str]:
    """``"POS:HEX"`` → ``(pos, hex)``; raises ValueError on anything else."""
    match = HEAD_RE.match(value.strip())
    if not match:
        raise ValueError("expected POS:HEX with a 64-digit hex hash")
    return int(match.group(1)), match.group(2).lower()


def format_head(position: int, hash_: str) -> str:
    return f"{position}:{hash_}"


# --- writing -------------------------------------------------------------------------


_INFO_KEY = "doorstep_chain"


def _state(session: Session) -> dict:
    """Per-transaction chain state: whether we hold the lock, and each chain's head."""
    return session.info.setdefault(_INFO_KEY, {"locked": False, "heads": {}})


@event.listens_for(Session, "after_transaction_end")
def _forget_state(session, transaction):
    # a commit, rollback or savepoint end: the cached heads may no longer be true.
    # A flush's internal subtransaction (a parent, not a savepoint) changes nothing.
    if transaction.parent is not None and not transaction.nested:
        return
    session.info.pop(_INFO_KEY, None)


def lock_chains(session: Session) -> None:
    """Become the single chain writer until the transaction ends.

    PostgreSQL: a transaction advisory lock. SQLite: the write transaction was
    begun with ``BEGIN IMMEDIATE`` (see ``crm.database``), which already is the lock.
    """
    from crm.database import _refuse_outside_a_transaction, write_intent  # the begin hook lives there

    state = _state(session)
    if state["locked"]:
        return
    _refuse_outside_a_transaction("a chain write")  # before begin_writing, or in a single statement
    intent = write_intent.get()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    elif bind.dialect.name == "sqlite":
        if not intent:  # refused every time, not only the first: nothing holds the lock
            raise RuntimeError("chain write in a SQLite unit of work that does not hold the write lock")
    state["locked"] = True


def head(session: Session, model) -> tuple[int, str]:
    """Position and hash of the last row, ``(0, ZERO_HASH)`` for an empty chain."""
    row = session.execute(
        select(model.position, model.hash).order_by(model.position.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, ZERO_HASH)


def append(session: Session, entry: ChainMixin, *, new_key: bool = False):
    """Link ``entry`` after the current head, flush it, and return it.

    A replay of an existing idempotency key with the same values returns the
    stored row; with different values it raises ``ChainConflict``. ``new_key``: the
    caller made the key up just now (a random UUID), so there is no stored row to look
    for (the key's unique index still refuses the impossible collision).
    """
    return append_all(session, [entry], new_keys=new_key)[0]


def append_all(session: Session, entries: list, *, new_keys: bool = False) -> list:
    """``append`` for several entries of one table, in order: one replay lookup for all their
    keys and one flush (one INSERT) for the new ones. Returns the stored or new row of each."""
    if not entries:
        return []
    model = type(entries[0])
    lock_chains(session)
    known: dict[str, Any] = {}
    if not new_keys:
        keys = [entry.idempotency_key for entry in entries]
        known = {row.idempotency_key: row for row in session.scalars(
            select(model).where(model.idempotency_key.in_(keys)))}
    heads = _state(session)["heads"]
    table = model.__tablename__
    last_pos, last_hash = heads[table] if table in heads else head(session, model)
    out = []
    for entry in entries:
        existing = known.get(entry.idempotency_key)
        if existing is not None:
            _check_replay(model, existing, entry)
            out.append(existing)
            continue
        _check_types(entry)
        entry.position, entry.prev_hash = last_pos + 1, last_hash
        entry.hash = link_hash(last_hash, canonical(entry.position, entry.idempotency_key, entry.chain_values()))
        session.add(entry)
        last_pos, last_hash = entry.position, entry.hash
        known[entry.idempotency_key] = entry  # the same key twice in one call: the second is a replay
        out.append(entry)
    session.flush()
    heads[table] = (last_pos, last_hash)  # we hold the lock: nobody else appends
    return out


def _check_replay(model, existing, entry) -> None:
    new_values = entry.chain_values()
    for name, old in existing.chain_values().items():
        if name not in model.__replay_ignore__ and old != new_values[name]:
            raise ChainConflict(entry.idempotency_key, name)


# --- checking ------------------------------------------------------------------------


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head_position: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None

    def line(self, name: str) -> str:
        if self.ok:
            return f"{name} ok: {self.count} entries, head {self.head_hash}"
        return f"{name} broken at {self.broken_at}: {self.reason}"


#: A chain longer than this per extra process is verified in parallel (one process per core).
PARALLEL_MIN_ROWS = 100_000
#: Most processes one verify forks, whatever the machine has.
PARALLEL_MAX = 8


def verify(session: Session, model, expect: tuple[int, str] | None = None, batch: int = 20000,
           workers: int | None = None, min_rows_per_worker: int = PARALLEL_MIN_ROWS) -> VerifyResult:
    """Recompute every link of ``model``'s chain in position order; report the first broken one.

    Reads with the raw driver cursor and encodes the stored values with an encoder generated
    for the table (the same bytes ``canonical`` produces), because this runs over millions of
    rows. Each link can be checked from its own row (its ``prev_hash`` against the stored hash
    of the row before, its hash against its content), so a long chain is cut into position
    ranges checked side by side — this process and forked ones, one per core (``workers``,
    default the cores this process may use) — and their verdicts joined in position order.
    A hash that differs is re-checked with the typed row and ``canonical`` before it is
    reported, so a value the fast encoder does not know can slow a check, never fail it.
    """
    scan = _Scan.of(model, session.get_bind().dialect)
    connection = session.connection().connection  # the DBAPI connection of this transaction
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT min(position), max(position), count(*) FROM {scan.table}")
        lowest, last, count = cursor.fetchone()
    finally:
        cursor.close()
    processes = _processes(session, workers, count, min_rows_per_worker)
    if processes <= 1 or lowest != 1 or count != last:  # a gap or a stray position: one scan pinpoints it
        parts = [scan.run(connection, None, ZERO_HASH, expect, batch)]
    else:
        parts = _run_parallel(session, scan, connection, _ranges(last, processes), expect, batch)
    return _join(parts, expect)


def _processes(session: Session, workers: int | None, count: int, min_rows: int) -> int:
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            workers = os.cpu_count() or 1
    workers = max(1, min(workers, PARALLEL_MAX, count // max(min_rows, 1)))
    if workers > 1:
        url = session.get_bind().url
        if url.get_backend_name() == "sqlite" and (url.database or ":memory:") in (":memory:", ""):
            return 1  # another process cannot see an in-memory database
        if "fork" not in multiprocessing.get_all_start_methods():
            return 1
    return workers


def _ranges(last: int, parts: int) -> list[tuple[int, int]]:
    """``1..last`` cut into ``parts`` consecutive ranges of (almost) equal length."""
    step, extra = divmod(last, parts)
    out, lo = [], 1
    for i in range(parts):
        hi = lo + step - 1 + (1 if i < extra else 0)
        out.append((lo, hi))
        lo = hi + 1
    return out


@dataclass
class _Part:
    """The verdict on one range: rows checked, the stored hash before its first row and of its
    last good row, and where (and why) it broke."""

    lo: int | None
    first_prev: str | None
    count: int
    last_hash: str
    broken_at: int | None = None
    reason: str | None = None


#: What a forked verify process needs; set just before the fork, so children inherit it.
_FORKED: dict[str, Any] = {}


def _run_parallel(session, scan, connection, ranges, expect, batch) -> list[_Part]:
    from concurrent.futures import ProcessPoolExecutor

    _FORKED.update(engine=session.get_bind(), scan=scan)
    context = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(max_workers=len(ranges) - 1, mp_context=context) as pool:
            futures = [pool.submit(_verify_range, lo, hi, expect, batch) for lo, hi in ranges[1:]]
            first = scan.run(connection, ranges[0], ZERO_HASH, expect, batch)
            return [first] + [future.result() for future in futures]
    finally:
        _FORKED.clear()


def _verify_range(lo: int, hi: int, expect, batch) -> _Part:
    """In a forked process: check ``lo..hi`` on a connection of its own."""
    engine, scan = _FORKED["engine"], _FORKED["scan"]
    engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    connection = engine.raw_connection()
    try:
        return scan.run(connection.driver_connection, (lo, hi), None, expect, batch)
    finally:
        connection.close()


def _join(parts: list[_Part], expect) -> VerifyResult:
    prev, count = ZERO_HASH, 0
    for part in parts:
        if part.first_prev is not None and part.first_prev != prev:
            return VerifyResult(False, count, count, prev, part.lo, "previous hash does not match the entry before it")
        if part.broken_at is not None:
            return VerifyResult(False, count + part.count, part.broken_at - 1,
                                part.last_hash if part.count else prev, part.broken_at, part.reason)
        prev, count = part.last_hash if part.count else prev, count + part.count
    if expect is not None and expect[0] > count:
        return VerifyResult(False, count, count, prev, expect[0], f"published head is beyond the last entry ({count})")
    if expect is not None and expect[0] == 0 and expect[1] != ZERO_HASH:
        return VerifyResult(False, count, count, prev, 0, "the head of an empty chain is 64 zeros")
    return VerifyResult(True, count, count, prev)


class _Scan:
    """How to read and re-hash one chained table on one database: the SELECT and a row encoder
    generated for its columns (no per-value function calls), plus the exact, typed re-check."""

    _cache: ClassVar[dict] = {}

    def __init__(self, model, sql_dialect):
        from crm.types import UTCDateTime

        self.model, self.sql_dialect = model, sql_dialect
        self.dialect = dialect = sql_dialect.name
        self.table = model.__table__.name
        self.fields = sorted(model.__chain_fields__)
        columns, self._fallback = [], {}
        prelude, tokens = [], []
        for i, name in enumerate(self.fields):
            column_type = model.__table__.c[name].type
            value = f"v{i}"
            if isinstance(column_type, UTCDateTime):
                # text 'YYYY-MM-DD HH:MM:SS.ffffff': SQLAlchemy's SQLite storage, to_char on PostgreSQL;
                # anything else gives a token that cannot match, and the typed re-check decides
                columns.append(name if dialect == "sqlite" else f"to_char({name}, 'YYYY-MM-DD HH24:MI:SS.US')")
                prelude.append(f"    t{i} = '~' if {value} is None else ('27:' + {value}[:10] + 'T' + {value}[11:] + 'Z'"
                               f" if len({value}) == 26 else '?')")
            else:
                columns.append(name)
                kind = _python_type(column_type)
                if kind is str:
                    prelude.append(f"    t{i} = '~' if {value} is None else f'{{len({value})}}:{{{value}}}'")
                elif kind is int:
                    prelude.append(f"    if {value} is None:\n        t{i} = '~'\n    else:\n"
                                   f"        s = str({value})\n        t{i} = f'{{len(s)}}:{{s}}'")
                elif kind is bool:
                    prelude.append(f"    t{i} = '~' if {value} is None else ('1:1' if {value} else '1:0')")
                else:  # unknown here: the generic encoder, one call per value
                    self._fallback[f"enc{i}"] = _encode
                    prelude.append(f"    t{i} = enc{i}({value})")
            tokens.append(f"{name}={{t{i}}}")
        self.sql = (f"SELECT position, idempotency_key, prev_hash, hash, {', '.join(columns)} "
                    f"FROM {self.table}")
        names = ", ".join(f"v{i}" for i in range(len(self.fields)))
        source = "\n".join([f"def encode(row):", f"    position, key, _prev, _hash, {names} = row", *prelude,
                            "    return f\"{position}\\n{len(key)}:{key}\\n" + "\\n".join(tokens) + "\".encode()"])
        namespace = dict(self._fallback)
        exec(compile(source, f"<chain encoder {self.table}/{dialect}>", "exec"), namespace)  # noqa: S102
        self.encode = namespace["encode"]

    @classmethod
    def of(cls, model, sql_dialect) -> "_Scan":
        key = (model, sql_dialect.name)
        if key not in cls._cache:
            cls._cache[key] = cls(model, sql_dialect)
        return cls._cache[key]

    def run(self, connection, bounds: tuple[int, int] | None, prev: str | None, expect, batch: int) -> _Part:
        """Check the rows in ``bounds`` (all rows if None). ``prev`` is the hash the first row must
        follow; None takes the first row's own ``prev_hash`` (the caller links the ranges)."""
        sql = self.sql
        if bounds is not None:
            sql += f" WHERE position BETWEEN {int(bounds[0])} AND {int(bounds[1])}"
        sql += " ORDER BY position"
        if self.dialect == "postgresql":
            cursor = connection.cursor(name=f"verify_{self.table}_{os.getpid()}")  # server-side: streams
            cursor.itersize = batch
        else:
            cursor = connection.cursor()
        try:
            cursor.execute(sql)
            return self._check(connection, cursor, bounds, prev, expect, batch)
        finally:
            cursor.close()

    def _check(self, connection, cursor, bounds, prev, expect, batch) -> _Part:
        sha256, fromhex, encode = hashlib.sha256, bytes.fromhex, self.encode
        expected_pos = bounds[0] if bounds else 1
        part = _Part(expected_pos, None, 0, prev or ZERO_HASH)
        expect_pos = expect[0] if expect is not None else -1
        first = True

        def broken(at: int, reason: str) -> _Part:
            part.broken_at, part.reason = at, reason
            return part

        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                break
            for row in rows:
                position = row[0]
                if position != expected_pos:
                    return broken(expected_pos, f"entry missing (next stored position is {position})")
                if first and prev is None:
                    part.first_prev = prev = row[2]
                elif row[2] != prev:
                    return broken(position, "previous hash does not match the entry before it")
                first = False
                stored = row[3]
                if sha256(fromhex(prev) + encode(row)).hexdigest() != stored and not self._exact(connection, row):
                    return broken(position, "hash does not match the entry's content")
                if position == expect_pos and stored != expect[1]:
                    return broken(position, f"hash differs from the published head {format_head(*expect)}")
                prev, expected_pos = stored, expected_pos + 1
                part.count, part.last_hash = part.count + 1, stored
        if bounds is not None and expected_pos <= bounds[1]:
            return broken(expected_pos, "entry missing (the chain ends before it)")
        return part

    def _exact(self, connection, row) -> bool:
        """The stored hash of ``row`` recomputed from its typed values and ``canonical``."""
        table = self.model.__table__
        cursor = connection.cursor()
        try:
            cursor.execute(f"SELECT {', '.join(self.fields)} FROM {self.table} WHERE position = {int(row[0])}")
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if raw is None:
            return False
        values = {}
        for name, value in zip(self.fields, raw):
            column_type = table.c[name].type
            processor = column_type.result_processor(self.sql_dialect, None)
            values[name] = processor(value) if processor else value
        try:
            payload = canonical(row[0], row[1], values)
        except (TypeError, ValueError):
            return False
        return link_hash(row[2], payload) == row[3]


def _python_type(column_type):
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


# --- guards --------------------------------------------------------------------------


def install_orm_guard() -> None:
    """Refuse ORM updates, deletes and bulk statements on chained tables (idempotent)."""
    if event.contains(Session, "before_flush", _refuse_changes):
        return
    event.listen(Session, "before_flush", _refuse_changes)
    event.listen(Session, "do_orm_execute", _refuse_bulk)


def _refuse_changes(session, flush_context, instances):
    for obj in session.deleted:
        if isinstance(obj, ChainMixin):
            raise AppendOnlyError(f"{type(obj).__tablename__} is append-only: delete refused")
    for obj in session.dirty:
        if isinstance(obj, ChainMixin) and session.is_modified(obj):
            raise AppendOnlyError(f"{type(obj).__tablename__} is append-only: update refused")


def _chained_tables() -> set[str]:
    return {cls.__tablename__ for cls in _all_subclasses(ChainMixin) if hasattr(cls, "__tablename__")}


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _refuse_bulk(state):
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    names = {m.class_.__tablename__ for m in state.all_mappers if issubclass(m.class_, ChainMixin)}
    if table is not None and getattr(table, "name", None) in _chained_tables():
        names.add(table.name)
    if names:
        raise AppendOnlyError(f"{', '.join(sorted(names))} is append-only: bulk statement refused")


_PG_FUNCTIONS = [
    """
CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '23001';
END
$$
""",
    """
CREATE OR REPLACE FUNCTION doorstep_chain_insert_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_pos bigint;
    last_hash text;
BEGIN
    EXECUTE format('SELECT position, hash FROM %I.%I ORDER BY position DESC LIMIT 1',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO last_pos, last_hash;
    IF NEW.position IS DISTINCT FROM COALESCE(last_pos, 0) + 1 THEN
        RAISE EXCEPTION '%: position must be last+1', TG_TABLE_NAME USING ERRCODE = '23001';
    END IF;
    IF NEW.prev_hash IS DISTINCT FROM COALESCE(last_hash, repeat('0', 64)) THEN
        RAISE EXCEPTION '%: prev_hash must equal the last hash', TG_TABLE_NAME USING ERRCODE = '23001';
    END IF;
    RETURN NEW;
END
$$
""",
]


def immutable_ddl(table: str, dialect: str, *, what: str = "immutable") -> list[str]:
    """UPDATE, DELETE (and on PostgreSQL TRUNCATE) refused on ``table``.

    Used by migrations, which keep a frozen copy of what this returned for their tables.
    """
    if dialect == "sqlite":
        return [f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is {what}: {op} refused'); END" for op in ("UPDATE", "DELETE")]
    if dialect == "postgresql":
        stmts = [_PG_FUNCTIONS[0]]
        for name, timing in (("no_update", "BEFORE UPDATE ON {t} FOR EACH ROW"),
                             ("no_delete", "BEFORE DELETE ON {t} FOR EACH ROW"),
                             ("no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT")):
            stmts += _pg_trigger(table, name, timing.format(t=table), "doorstep_append_only")
        return stmts
    raise ValueError(f"unsupported database: {dialect}")


def guard_ddl(table: str, dialect: str) -> list[str]:
    """``immutable_ddl`` plus the INSERT guard that keeps a chain gap-free and linked."""
    stmts = immutable_ddl(table, dialect, what="append-only")
    if dialect == "sqlite":
        stmts.append(
            f"CREATE TRIGGER {table}_insert_guard BEFORE INSERT ON {table} BEGIN "
            f"SELECT RAISE(ABORT, '{table}: position must be last+1') "
            f"WHERE NEW.position IS NOT (SELECT COALESCE(MAX(position), 0) + 1 FROM {table}); "
            f"SELECT RAISE(ABORT, '{table}: prev_hash must equal the last hash') "
            f"WHERE NEW.prev_hash IS NOT COALESCE("
            f"(SELECT hash FROM {table} ORDER BY position DESC LIMIT 1), '{ZERO_HASH}'); "
            f"SELECT RAISE(ABORT, '{table}: idempotency key exists') "
            f"WHERE EXISTS (SELECT 1 FROM {table} WHERE idempotency_key = NEW.idempotency_key); "
            f"END")
    else:
        stmts.append(_PG_FUNCTIONS[1])
        stmts += _pg_trigger(table, "insert_guard", f"BEFORE INSERT ON {table} FOR EACH ROW",
                             "doorstep_chain_insert_guard")
    return stmts


def _pg_trigger(table: str, name: str, timing: str, function: str) -> list[str]:
    """A trigger that fires even in replica mode (ENABLE ALWAYS)."""
    return [f"CREATE TRIGGER {table}_{name} {timing} EXECUTE FUNCTION {function}()",
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_{name}"]


def drop_guard_ddl(table: str, dialect: str) -> list[str]:
    names = ["no_update", "no_delete", "insert_guard"] + (["no_truncate"] if dialect == "postgresql" else [])
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_{n}" for n in names]
    return [f"DROP TRIGGER IF EXISTS {table}_{n} ON {table}" for n in names]
