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
        try:
            expected = table.c[name].type.python_type
        except NotImplementedError:
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
    state = _state(session)
    if state["locked"]:
        return
    state["locked"] = True
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    elif bind.dialect.name == "sqlite":
        from crm.database import write_intent  # the begin hook lives there

        if not write_intent.get():
            raise RuntimeError("chain write in a read-only (deferred) SQLite transaction")


def head(session: Session, model) -> tuple[int, str]:
    """Position and hash of the last row, ``(0, ZERO_HASH)`` for an empty chain."""
    row = session.execute(
        select(model.position, model.hash).order_by(model.position.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, ZERO_HASH)


def append(session: Session, entry: ChainMixin):
    """Link ``entry`` after the current head, flush it, and return it.

    A replay of an existing idempotency key with the same values returns the
    stored row; with different values it raises ``ChainConflict``.
    """
    model = type(entry)
    lock_chains(session)
    existing = session.execute(
        select(model).where(model.idempotency_key == entry.idempotency_key)
    ).scalar_one_or_none()
    if existing is not None:
        new_values = entry.chain_values()
        for name, old in existing.chain_values().items():
            if name in model.__replay_ignore__:
                continue
            if old != new_values[name]:
                raise ChainConflict(entry.idempotency_key, name)
        return existing
    _check_types(entry)
    heads = _state(session)["heads"]
    table = model.__tablename__
    last_pos, last_hash = heads[table] if table in heads else head(session, model)
    entry.position = last_pos + 1
    entry.prev_hash = last_hash
    entry.hash = link_hash(last_hash, canonical(entry.position, entry.idempotency_key, entry.chain_values()))
    session.add(entry)
    session.flush()
    _state(session)["heads"][table] = (entry.position, entry.hash)  # we hold the lock: nobody else appends
    return entry


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


def verify(session: Session, model, expect: tuple[int, str] | None = None, batch: int = 20000) -> VerifyResult:
    """Recompute every link of ``model``'s chain in position order; stop at the first broken one.

    Reads with the raw driver cursor and encodes the stored values directly (the same
    bytes ``canonical`` produces), because this runs over millions of rows.
    """
    fields = sorted(model.__chain_fields__)
    table = model.__table__
    dialect = session.get_bind().dialect.name
    sql = (f"SELECT position, idempotency_key, prev_hash, hash, {', '.join(fields)} "
           f"FROM {table.name} ORDER BY position")
    encoders = [_raw_encoder(table.c[name].type, dialect) for name in fields]
    connection = session.connection().connection  # the DBAPI connection of this transaction
    if dialect == "postgresql":
        cursor = connection.cursor(name=f"verify_{table.name}")  # server-side: streams
        cursor.itersize = batch
    else:
        cursor = connection.cursor()
    try:
        cursor.execute(sql)
        return _verify_cursor(cursor, fields, encoders, expect, batch)
    finally:
        cursor.close()


def _raw_encoder(column_type, dialect: str):
    """A function from a raw driver value of this column to its canonical token."""
    from crm.types import UTCDateTime

    if isinstance(column_type, UTCDateTime):
        if dialect == "sqlite":
            def encode_sqlite_datetime(value):
                if value is None:
                    return "~"
                if len(value) == 26 and value[10] == " ":  # SQLAlchemy's storage format, microseconds always
                    return f"27:{value[:10]}T{value[11:]}Z"
                return _encode(datetime.fromisoformat(value).replace(tzinfo=timezone.utc))
            return encode_sqlite_datetime

        def encode_datetime(value):
            if value is None:
                return "~"
            return f"27:{value.isoformat(timespec='microseconds')}Z" if value.year >= 1000 else _encode(
                value.replace(tzinfo=timezone.utc))
        return encode_datetime

    def encode_plain(value):
        if value is None:
            return "~"
        if value is True or value is False:
            return "1:1" if value else "1:0"
        text_ = value if isinstance(value, str) else str(value)
        return f"{len(text_)}:{text_}"
    return encode_plain


def _verify_cursor(cursor, fields, encoders, expect, batch) -> VerifyResult:
    sha256 = hashlib.sha256
    prefixes = [f"{name}=" for name in fields]
    pairs = list(zip(prefixes, encoders))
    expected_pos, prev, count = 1, ZERO_HASH, 0
    expect_pos = expect[0] if expect is not None else -1

    def broken(at: int, reason: str) -> VerifyResult:
        return VerifyResult(False, count, expected_pos - 1, prev, at, reason)

    while True:
        rows = cursor.fetchmany(batch)
        if not rows:
            break
        for row in rows:
            position = row[0]
            if position != expected_pos:
                return broken(expected_pos, f"entry missing (next stored position is {position})")
            if row[2] != prev:
                return broken(position, "previous hash does not match the entry before it")
            key = row[1]
            parts = [str(position), f"{len(key)}:{key}"]
            parts += [prefix + encode(value) for (prefix, encode), value in zip(pairs, row[4:])]
            digest = sha256(bytes.fromhex(prev) + "\n".join(parts).encode("utf-8")).hexdigest()
            stored = row[3]
            if digest != stored:
                return broken(position, "hash does not match the entry's content")
            if position == expect_pos and stored != expect[1]:
                return broken(position, f"hash differs from the published head {format_head(*expect)}")
            prev, count, expected_pos = stored, count + 1, expected_pos + 1
    if expect is not None and expect[0] > count:
        return broken(expect[0], f"published head is beyond the last entry ({count})")
    if expect is not None and expect[0] == 0 and expect[1] != ZERO_HASH:
        return broken(0, "the head of an empty chain is 64 zeros")
    return VerifyResult(True, count, count, prev)


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
