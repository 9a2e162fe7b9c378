"""Copy a database `make bench` built on SQLite into a PostgreSQL database, row for row.

    python bench/pgload.py SQLITE_DB URL

`deploytrack db migrate` sets up the schema at URL first; then every table's rows (the
event log's events, nodes and tree heads included) are copied with COPY in one
transaction, the schema's triggers set aside for the load (`session_replication_role =
replica`: the rows were written and checked by deploytrack on SQLite already, and the
capture must not log them again), and the tables are analysed as a server's autovacuum
would have done by the time a database of that size is queried. The PostgreSQL database
then holds exactly what the SQLite one holds: the same ids, times, events and tree heads,
which is what `audit import` of the SQLite database's bundle would give, in a fraction of
the time (`log verify` accepts the result: bench/run.py runs it on the small one).

The columns of each table must be the same, in the same order, on both backends
(tests/test_pgschema.py pins it): a difference stops the load.

Prints one JSON line: rows, seconds, bytes (the database's size on the server).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

EXE = str(Path(sys.executable).parent / "deploytrack")
SKIP = {"deploytrack_migration"}  # the server's own, written by `db migrate`


def load(source: Path, url: str) -> dict[str, float]:
    import psycopg

    started = time.monotonic()
    done = subprocess.run([EXE, "--db", url, "db", "migrate"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"db migrate failed on {url}: {done.stderr}")
    rows = 0
    with closing(sqlite3.connect(f"file:{source}?immutable=1", uri=True)) as src:
        tables = [
            str(name)
            for (name,) in src.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
            if name not in SKIP
        ]
        with psycopg.connect(url) as conn:  # one transaction, committed on exit
            conn.execute("SET session_replication_role = replica")
            on_server = [
                str(r[0])
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
                if r[0] not in SKIP
            ]
            if sorted(on_server) != tables:
                raise SystemExit(f"tables differ: SQLite {tables}, PostgreSQL {sorted(on_server)}")
            # What `db migrate` wrote (default logical environments, the log's start) goes:
            # the SQLite database has its own.
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
            for table in tables:
                columns = [str(c[1]) for c in src.execute(f'PRAGMA table_info("{table}")')]
                server_columns = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT column_name FROM information_schema.columns"
                        " WHERE table_schema = current_schema() AND table_name = %s"
                        " ORDER BY ordinal_position",
                        (table,),
                    )
                ]
                if columns != server_columns:
                    raise SystemExit(f"{table}: SQLite {columns}, PostgreSQL {server_columns}")
                names = ", ".join(f'"{c}"' for c in columns)
                with conn.cursor().copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                    for row in src.execute(f'SELECT {names} FROM "{table}"'):
                        copy.write_row(row)
                        rows += 1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return {"rows": rows, "seconds": time.monotonic() - started, "bytes": size[0] if size else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("url")
    args = parser.parse_args()
    print(json.dumps(load(args.source, args.url)))


if __name__ == "__main__":
    main()
