"""The floor: start Python and run the one SQLite statement a command boils down to.

    python bench/floor.py DB insert|heartbeat|list|status [ARG]

Only the standard `sqlite3` module, the same pragmas deploytrack sets, and the same
write lock (BEGIN IMMEDIATE); what deploytrack costs beyond this is its own.
"""

import sqlite3
import sys
import time

db, what = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("PRAGMA busy_timeout = 30000")
conn.execute("PRAGMA foreign_keys = 1")
conn.execute("PRAGMA synchronous = NORMAL")
now = time.time_ns() // 1000
if what == "insert":
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO deployment (environment_id, logical_environment_id, deployment_name, kind,"
        " digest, status, created_at, last_seen_at) VALUES (1, 3, ?, 'CONTAINER_IMAGE', ?,"
        " 'deployed', ?, ?)",
        (sys.argv[3], sys.argv[4], now, now),
    )
    conn.execute("COMMIT")
elif what == "heartbeat":
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE deployment SET last_seen_at = ? WHERE id = ?", (now, int(sys.argv[3])))
    conn.execute("COMMIT")
elif what in ("list", "status"):
    rows = conn.execute(
        "SELECT d.id, e.name, l.name, d.deployment_name, d.kind, d.digest, d.status,"
        " d.created_at, d.last_seen_at FROM deployment d"
        " JOIN environment e ON e.id = d.environment_id"
        " JOIN logical_environment l ON l.id = d.logical_environment_id"
        " WHERE d.status = 'deployed' ORDER BY d.created_at DESC"
    ).fetchall()
    for row in rows:
        print(*row)
else:
    raise SystemExit(f"unknown floor {what}")
