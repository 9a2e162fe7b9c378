"""PostgreSQL: the server database a team shares when its jobs run on many hosts.

Only the store talks SQL, and it writes SQLite's dialect where the two agree: this
module makes PostgreSQL accept it. `PgDatabase.execute_sql` takes `?` placeholders (what
the SQLite code and the peewee queries of the models use: `param` is `?` here too) and
hands psycopg its `%s`, with every literal `%` doubled. psycopg 3 is an optional extra
(`pip install deploytrack[postgresql]`), imported only here, only for a PostgreSQL URL.

Transactions. A write takes one transaction-scoped advisory lock (`WRITE_LOCK`) before
anything else, so writes are serialised as SQLite's BEGIN IMMEDIATE serialises them: the
event log is one total order (each append reads the log's end under the lock), and a
slot's active record is read and replaced by one writer at a time. A read is one
REPEATABLE READ transaction: its queries see one snapshot, and it never waits for a
writer. `db migrate` takes its own advisory lock (`MIGRATE_LOCK`).
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import peewee

from deploytrack.store.errors import BUSY_TIMEOUT_S, StoreError

# Advisory lock keys (64-bit): "deploytrack write" and "deploytrack migrate" in ASCII,
# so a DBA reading pg_locks can tell them apart from another application's.
WRITE_LOCK = int.from_bytes(b"dt-write", "big") & 0x7FFF_FFFF_FFFF_FFFF
MIGRATE_LOCK = int.from_bytes(b"dt-migrt", "big") & 0x7FFF_FFFF_FFFF_FFFF

CONNECT_TIMEOUT_S = 10
SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str) -> bool:
    """Whether --db names a PostgreSQL server rather than an SQLite file."""
    return target.startswith(SCHEMES)


def mask(url: str) -> str:
    """The URL as it may be shown: a password in it replaced by `***`.

    Plain string work (no urllib): the URL may not parse, and must be masked anyway.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    masked = f"{scheme}://{userinfo}{at}{host}{slash}{tail}"
    # A password may also come as a query parameter: password=...
    head, q, query = masked.partition("?")
    if q:
        parts = [
            "password=***" if p.lower().startswith("password=") else p for p in query.split("&")
        ]
        masked = head + "?" + "&".join(parts)
    return masked


def psycopg_module() -> Any:
    """psycopg, imported, with peewee told about it (peewee looks for it only when it is
    itself imported, and the SQLite path imports peewee with psycopg hidden: see
    `hide_psycopg`)."""
    for name in ("psycopg", "psycopg2"):
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]  # hidden from peewee by cli.main (its start-up cost)
    try:
        import psycopg
        from psycopg.pq import TransactionStatus
        from psycopg.types.json import Json, Jsonb
    except ImportError:
        raise StoreError(
            "PostgreSQL support is not installed: pip install 'deploytrack[postgresql]'"
        ) from None
    if peewee.psycopg is None:  # type: ignore[attr-defined]
        peewee.psycopg = psycopg  # type: ignore[attr-defined]
        peewee.TransactionStatus = TransactionStatus  # type: ignore[attr-defined]
        peewee.Json_pg3 = Json  # type: ignore[attr-defined]
        peewee.Jsonb_pg3 = Jsonb  # type: ignore[attr-defined]
        adapter: Any = peewee.Psycopg3Adapter
        adapter.txn_idle = TransactionStatus.IDLE
        adapter.txn_inerror = TransactionStatus.INERROR
        adapter.txn_unknown = TransactionStatus.UNKNOWN
    return psycopg


@functools.lru_cache(maxsize=2048)
def convert(sql: str) -> str:
    """SQLite's `?` placeholders as psycopg's `%s`, and `%` doubled (psycopg reads `%` as
    the start of a placeholder everywhere, literals included). A `?` inside a quoted
    literal or identifier stays as it is."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


class PgDatabase(peewee.PostgresqlDatabase):
    """peewee's PostgreSQL database, speaking the SQLite code's `?` placeholders."""

    param = "?"

    def __init__(self, url: str, **kwargs: Any) -> None:
        psycopg_module()  # before peewee picks its driver adapter
        super().__init__(url, prefer_psycopg3=True, **kwargs)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        return super().execute_sql(convert(sql), params)  # type: ignore[no-untyped-call]

    def get_tables(self, schema: str | None = None) -> list[str]:
        # peewee's own writes psycopg's %s, which execute_sql would take for a literal.
        cursor = self.execute_sql(
            "SELECT tablename FROM pg_catalog.pg_tables"
            " WHERE schemaname = coalesce(?, current_schema()) ORDER BY tablename",
            (schema,),
        )
        return [str(row[0]) for row in cursor.fetchall()]

    def _connect(self) -> Any:
        psycopg = psycopg_module()
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(self.database)
        # The URL's own connect_timeout wins; a server that does not answer is never
        # waited for without a bound.
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "deploytrack")
        conn = psycopg.connect(**params)
        conn.autocommit = True
        # Waiting for a writer's lock is bounded like SQLite's busy timeout.
        conn.execute(f"SET lock_timeout = '{BUSY_TIMEOUT_S}s'")
        return conn


def open_database(url: str) -> PgDatabase:
    """The database at `url`, not connected yet; a URL libpq cannot read is refused here."""
    psycopg = psycopg_module()
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except psycopg.Error as exc:
        # libpq's reason, without the URL it quotes back (which may hold a password).
        reason = str(exc).split(' in URI: "')[0].split(': "')[0].strip().rstrip(":")
        raise StoreError(
            f"{mask(url)} is not a PostgreSQL URL libpq accepts ({reason}): write it as "
            "postgresql://USER@HOST:PORT/DBNAME"
        ) from None
    return PgDatabase(url, autoconnect=False)


def is_error(exc: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error (peewee keeps the original as `orig`)."""
    original = getattr(exc, "orig", None) or getattr(exc, "__cause__", None) or exc
    return getattr(original, "sqlstate", None)


# Deadlocks and serialization failures: the transaction did nothing and may be run again.
RETRYABLE = frozenset({"40001", "40P01"})


def translate(exc: BaseException, url: str) -> StoreError:
    """A driver error as one line that says what to do; never the password."""
    shown = mask(url)
    original: Any = getattr(exc, "orig", None) or exc
    diag = getattr(original, "diag", None)
    primary = (getattr(diag, "message_primary", None) or str(original)).strip()
    text = " ".join(primary.split())
    low = text.lower()
    state = sqlstate(exc) or ""
    if state in RETRYABLE:
        return Retry(
            f"database {shown} is busy: a concurrent transaction conflicted with this one; "
            "retry the command"
        )
    if state == "55P03" or "lock timeout" in low:
        return StoreError(
            f"database {shown} is busy: another process holds its write lock (deploytrack "
            f"waits up to {BUSY_TIMEOUT_S} s for a writer); retry when it has finished"
        )
    if state.startswith("23"):
        # A constraint in SQLite's words (a trigger's refusal already is): the same line
        # on both backends, and no row values (PostgreSQL's DETAIL would show them).
        from deploytrack.store.pgrefusal import sqlite_message

        text = (sqlite_message(diag) if diag is not None else None) or text
        return StoreError(f"the database refused the change: {text}")
    if (
        "password authentication failed" in low
        or "no password supplied" in low
        or state in ("28P01", "28000")
    ):
        return StoreError(
            f"PostgreSQL refused the login to {shown}: check the user, and the password in "
            "PGPASSWORD or ~/.pgpass"
        )
    if "does not exist" in low and "database" in low:
        return StoreError(
            f"{shown}: the database does not exist on the server: create it first "
            "(docs/postgresql.md)"
        )
    if "timeout expired" in low:
        return StoreError(
            f"PostgreSQL at {shown} did not answer within the connect timeout: check the "
            "host and port, or set connect_timeout= in the URL"
        )
    if "connection refused" in low or "could not connect" in low or "connection failed" in low:
        return StoreError(
            f"cannot reach PostgreSQL at {shown}: check that the server runs and the host "
            "and port are right"
        )
    if "ssl" in low or "certificate" in low:
        return StoreError(f"TLS to PostgreSQL at {shown} failed: {_scrub(text, url)}")
    if "permission denied" in low:
        return StoreError(
            f"PostgreSQL at {shown} refused an operation: {text} (grant the role the rights "
            "docs/postgresql.md lists)"
        )
    if "invalid" in low and ("dsn" in low or "connection" in low or "uri" in low):
        return StoreError(f"{shown} is not a PostgreSQL URL libpq accepts: {_scrub(text, url)}")
    return StoreError(f"database error on {shown}: {_scrub(text, url)}")


def _scrub(text: str, url: str) -> str:
    """A driver message with any password of the URL taken out, whatever quoted it."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:  # a URL libpq cannot read: mask() already hides its userinfo
        password = url.partition("://")[2].partition("@")[0].partition(":")[2] or None
    if password:
        text = text.replace(str(password), "***")
    return text


class Retry(StoreError):
    """A deadlock or serialization failure: nothing was written, and running the command
    again is safe (the CLI does, a bounded number of times: cli.RETRIES)."""

    retryable = True


def describe(db: peewee.Database) -> dict[str, Any]:
    """The server's version, and whether this connection is encrypted (doctor)."""
    version = db.execute_sql("SHOW server_version").fetchone()
    ssl = db.execute_sql(
        "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    ).fetchone()
    return {
        "version": str(version[0]) if version else "",
        "tls": bool(ssl and ssl[0]),
        "tls_version": str(ssl[1]) if ssl and ssl[0] else None,
    }
