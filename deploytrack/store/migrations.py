"""Schema migrations: an ordered list of named functions, each applied once and recorded.

A migration is a function decorated with `@migration`: the decorator appends it to
MIGRATIONS, so the order of the list is the order of definition, and a second function
of the same name is refused when this module is imported. To change the schema, add a
function at the end; never edit one that has shipped (a database that applied it would
not see the edit). One change per migration from now on: one feature's table, one
column, one trigger, each in its own migration with a name that says what it changes
(m001-m004 predate the rule and are kept as they shipped). An append-only table's
trigger pair comes from `append_only()`, not written out by hand.

A database
that records a migration this list does not know was written by a newer deploytrack and
is refused before anything is written to it.

All pending migrations run in one BEGIN IMMEDIATE transaction, and the list of applied
ones is read again once the lock is held, so several processes opening a brand-new
database at the same moment apply each migration exactly once.

A migration that changes rows of a state table (anything but the log's tables and this
bookkeeping) after m006 must append events for them with `eventlog.append`, as m006's
`eventlog.start` does: `log verify` would otherwise find rows changed outside the log.

The DDL is SQLite's. store/pgschema.py holds each step's PostgreSQL twin, under the same
name: a new migration here needs its twin there (tests/test_pgschema.py fails without it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import peewee

from deploytrack import timeutil
from deploytrack.store.errors import BUSY_TIMEOUT_S, StoreError

MIGRATION_TABLE = "deploytrack_migration"

Migration = Callable[[peewee.Database], None]

# Every migration, in the order of definition (the order they are applied in).
MIGRATIONS: list[Migration] = []


def migration(function: Migration) -> Migration:
    """Register `function` as the next migration; a name already taken is refused."""
    if function.__name__ in names():
        raise ValueError(
            f"two schema migrations are named {function.__name__!r}: give the new one a "
            "name of its own (a shipped migration is never replaced)"
        )
    MIGRATIONS.append(function)
    return function


def names() -> list[str]:
    """The names of the known migrations, in order: what the bookkeeping table records."""
    return [m.__name__ for m in MIGRATIONS]


def _quoted_message(message: str) -> str:
    if "'" in message:
        raise ValueError(f"a trigger message cannot contain a quote: {message!r}")
    return message


def no_update(table: str, message: str, *, indent: int = 12) -> str:
    """A trigger refusing every UPDATE of `table` with `message`.

    `indent` only lays out the statement's second line: SQLite keeps the text of a
    CREATE as written, so the migrations that shipped before this helper pass the
    indentation they had, and a database they set up does not differ by a space.
    """
    return (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}\n{' ' * indent}"
        f"BEGIN SELECT RAISE(ABORT, '{_quoted_message(message)}'); END"
    )


def no_delete(table: str, message: str, *, indent: int = 12) -> str:
    """A trigger refusing every DELETE from `table` with `message` (see `no_update`)."""
    return (
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}\n{' ' * indent}"
        f"BEGIN SELECT RAISE(ABORT, '{_quoted_message(message)}'); END"
    )


def append_only(table: str, changes: str, deletes: str, *, indent: int = 12) -> list[str]:
    """The trigger pair of an append-only table: every UPDATE refused with `changes`,
    every DELETE with `deletes`."""
    return [no_update(table, changes, indent=indent), no_delete(table, deletes, indent=indent)]


def _variable_event_table(table: str, actions: str) -> str:
    """The head of `variable_event`'s CREATE TABLE, up to its table CHECKs: m003 created the
    table and m004 rebuilt it (SQLite cannot change a CHECK) with the same columns and the
    same rules for a scope and a variable's name; only the actions an entry takes differ.

    Both migrations shipped, so this text must not change by a byte: SQLite keeps it as
    written, and tests/test_migrations.py compares a fresh schema with the one they made.
    """
    return f"""CREATE TABLE {table} (
            id INTEGER PRIMARY KEY,
            logical_environment_id INTEGER NOT NULL REFERENCES logical_environment (id),
            environment_id INTEGER REFERENCES environment (id),
            deployment_name TEXT
                CHECK (deployment_name IS NULL OR length(deployment_name) BETWEEN 1 AND 253),
            name TEXT NOT NULL CHECK (
                length(name) BETWEEN 1 AND 255
                AND name NOT GLOB '*[^A-Za-z0-9_]*' AND name NOT GLOB '[0-9]*'
                AND upper(substr(name, 1, 12)) <> 'DEPLOYTRACK_'),
            action TEXT NOT NULL CHECK (action IN ({actions})),
            is_secret INTEGER NOT NULL DEFAULT 0 CHECK (is_secret IN (0, 1)),
            value TEXT,
            ciphertext BLOB,
            key_id TEXT,
            created_at INTEGER NOT NULL,"""


@migration
def m001_core(db: peewee.Database) -> None:
    """Environments, logical environments, the evidence store and deployment records."""
    statements = [
        """CREATE TABLE environment (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            type TEXT NOT NULL
                CHECK (type IN ('kubernetes', 'ecs', 'server', 'lambda', 'custom')),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE logical_environment (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        # Content-addressed bytes: the key is the sha256 of the content.
        """CREATE TABLE blob (
            digest TEXT PRIMARY KEY CHECK (digest LIKE 'sha256:%' AND length(digest) = 71),
            size INTEGER NOT NULL CHECK (size >= 0),
            content BLOB NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE attestation (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE REFERENCES blob (digest),
            format TEXT NOT NULL CHECK (format IN ('statement', 'dsse', 'sigstore-bundle')),
            statement_type TEXT NOT NULL,
            predicate_type TEXT NOT NULL,
            project TEXT,
            version TEXT,
            workflow TEXT,
            imported_at INTEGER NOT NULL
        )""",
        "CREATE INDEX attestation_project ON attestation (project, version)",
        """CREATE TABLE attestation_subject (
            id INTEGER PRIMARY KEY,
            attestation_id INTEGER NOT NULL REFERENCES attestation (id),
            name TEXT NOT NULL,
            digest TEXT NOT NULL CHECK (digest LIKE '%_:_%')
        )""",
        "CREATE INDEX attestation_subject_digest ON attestation_subject (digest)",
        "CREATE INDEX attestation_subject_owner ON attestation_subject (attestation_id)",
        """CREATE TABLE attestation_material (
            id INTEGER PRIMARY KEY,
            attestation_id INTEGER NOT NULL REFERENCES attestation (id),
            name TEXT,
            kind TEXT,
            digest TEXT CHECK (digest IS NULL OR digest LIKE '%_:_%')
        )""",
        "CREATE INDEX attestation_material_digest ON attestation_material (digest)",
        "CREATE INDEX attestation_material_owner ON attestation_material (attestation_id)",
        """CREATE TABLE deployment (
            id INTEGER PRIMARY KEY,
            environment_id INTEGER NOT NULL REFERENCES environment (id),
            logical_environment_id INTEGER NOT NULL REFERENCES logical_environment (id),
            deployment_name TEXT NOT NULL CHECK (length(deployment_name) > 0),
            kind TEXT NOT NULL CHECK (kind IN ('CONTAINER_IMAGE', 'HELM_CHART')),
            digest TEXT NOT NULL CHECK (digest LIKE 'sha256:%' AND length(digest) = 71),
            artifact_ref TEXT,
            status TEXT NOT NULL CHECK (status IN ('deployed', 'superseded', 'decommissioned')),
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL CHECK (last_seen_at >= created_at),
            ended_at INTEGER CHECK (ended_at IS NULL OR ended_at >= created_at),
            superseded_by INTEGER
                REFERENCES deployment (id) DEFERRABLE INITIALLY DEFERRED,
            CHECK ((status = 'deployed') = (ended_at IS NULL)),
            CHECK ((status = 'superseded') = (superseded_by IS NOT NULL)),
            CHECK (superseded_by IS NULL OR superseded_by > id)
        )""",
        # The invariant: at most one active record per slot.
        """CREATE UNIQUE INDEX deployment_one_active
            ON deployment (environment_id, logical_environment_id, deployment_name, kind)
            WHERE status = 'deployed'""",
        """CREATE INDEX deployment_key_history
            ON deployment (environment_id, logical_environment_id, deployment_name, kind, id)""",
        "CREATE INDEX deployment_logical ON deployment (logical_environment_id)",
        "CREATE INDEX deployment_digest ON deployment (digest)",
        "CREATE INDEX deployment_superseded_by ON deployment (superseded_by)",
        # History is immutable: records are never deleted, and an update may only
        # heartbeat an active record or end it. Evidence never changes once stored.
        no_delete("deployment", "deployment records are never deleted"),
        """CREATE TRIGGER deployment_immutable BEFORE UPDATE ON deployment
            WHEN OLD.status <> 'deployed'
              OR NEW.id IS NOT OLD.id
              OR NEW.environment_id IS NOT OLD.environment_id
              OR NEW.logical_environment_id IS NOT OLD.logical_environment_id
              OR NEW.deployment_name IS NOT OLD.deployment_name
              OR NEW.kind IS NOT OLD.kind
              OR NEW.digest IS NOT OLD.digest
              OR NEW.artifact_ref IS NOT OLD.artifact_ref
              OR NEW.created_at IS NOT OLD.created_at
            BEGIN SELECT RAISE(ABORT, 'deployment records are immutable history'); END""",
        """CREATE TRIGGER deployment_needs_evidence BEFORE INSERT ON deployment
            WHEN NOT EXISTS (SELECT 1 FROM attestation_subject WHERE digest = NEW.digest)
             AND NOT EXISTS (SELECT 1 FROM attestation_material WHERE digest = NEW.digest)
            BEGIN SELECT RAISE(ABORT, 'digest is not in the evidence store'); END""",
    ]
    for table in ("blob", "attestation", "attestation_subject", "attestation_material"):
        statements += append_only(
            table, "stored evidence never changes", "stored evidence is never deleted", indent=16
        )
    for sql in statements:
        db.execute_sql(sql)
    insert_default_logical_environments(db)


def insert_default_logical_environments(db: peewee.Database) -> None:
    """The three logical environments every new database starts with (m001 on both
    backends: the same rows, in the same order, so the same ids and `imported` events)."""
    now = timeutil.now_us()
    for name, description in (
        ("development", "For development and testing"),
        ("staging", "Pre-production validation"),
        ("production", "Live production workloads"),
    ):
        db.execute_sql(
            "INSERT INTO logical_environment"
            " (name, description, is_default, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
            (name, description, now, now),
        )


@migration
def m002_evidence_trust(db: peewee.Database) -> None:
    """Evidence trust: public keys, remembered signature verifications, stage policies with their
    history, and which policy (and which evidence) admitted each deployment record.

    Everything here is history: append-only, guarded by triggers like m001's evidence.
    Only public keys are stored (SubjectPublicKeyInfo PEM); private keys never are.
    """
    statements = [
        """CREATE TABLE public_key (
            id INTEGER PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE CHECK (fingerprint LIKE 'SHA256:_%'),
            algorithm TEXT NOT NULL,
            pem TEXT NOT NULL CHECK (pem LIKE '-----BEGIN PUBLIC KEY-----%'
                                     AND pem NOT LIKE '%PRIVATE%'),
            created_at INTEGER NOT NULL
        )""",
        # A signature on the attestation's DSSE envelope verified with the key.
        """CREATE TABLE attestation_verification (
            id INTEGER PRIMARY KEY,
            attestation_id INTEGER NOT NULL REFERENCES attestation (id),
            public_key_id INTEGER NOT NULL REFERENCES public_key (id),
            keyid TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL CHECK (source IN ('verify', 'create', 'admission')),
            verified_at INTEGER NOT NULL
        )""",
        """CREATE INDEX attestation_verification_owner
            ON attestation_verification (attestation_id, public_key_id)""",
        # A policy version of a logical environment. Its policy in force is its newest row:
        # 'set' (with its required predicate types, a JSON array, and its trusted keys in
        # stage_policy_key) or 'clear' (no policy).
        """CREATE TABLE stage_policy (
            id INTEGER PRIMARY KEY,
            logical_environment_id INTEGER NOT NULL REFERENCES logical_environment (id),
            action TEXT NOT NULL CHECK (action IN ('set', 'clear')),
            required_predicates TEXT NOT NULL DEFAULT '[]'
                CHECK (required_predicates LIKE '[%]'),
            created_at INTEGER NOT NULL,
            CHECK (action = 'set' OR required_predicates = '[]')
        )""",
        "CREATE INDEX stage_policy_stage ON stage_policy (logical_environment_id, id)",
        """CREATE TABLE stage_policy_key (
            policy_id INTEGER NOT NULL REFERENCES stage_policy (id),
            public_key_id INTEGER NOT NULL REFERENCES public_key (id),
            PRIMARY KEY (policy_id, public_key_id)
        )""",
        # Which policy version admitted a record (NULL: the logical environment had no policy).
        "ALTER TABLE deployment ADD COLUMN policy_id INTEGER REFERENCES stage_policy (id)",
        """CREATE TRIGGER deployment_policy_immutable BEFORE UPDATE ON deployment
            WHEN NEW.policy_id IS NOT OLD.policy_id
            BEGIN SELECT RAISE(ABORT, 'deployment records are immutable history'); END""",
        # A new record names exactly the policy in force in its logical environment (NULL
        # when none): no write path can skip the gate without the schema noticing.
        """CREATE TRIGGER deployment_policy_in_force BEFORE INSERT ON deployment
            WHEN NEW.policy_id IS NOT (
                SELECT CASE WHEN action = 'set' THEN id END FROM stage_policy
                WHERE logical_environment_id = NEW.logical_environment_id
                ORDER BY id DESC LIMIT 1)
            BEGIN SELECT RAISE(ABORT,
                'a deployment record must name the stage policy in force that admitted it');
            END""",
        # The evidence that satisfied each rule of the policy when the record was admitted:
        # requirement is a required predicate type, or '' for "an attestation naming the
        # digest verifies with a trusted key" (a policy of keys only).
        """CREATE TABLE deployment_admission (
            id INTEGER PRIMARY KEY,
            deployment_id INTEGER NOT NULL REFERENCES deployment (id),
            requirement TEXT NOT NULL,
            attestation_id INTEGER NOT NULL REFERENCES attestation (id),
            public_key_id INTEGER REFERENCES public_key (id)
        )""",
        "CREATE INDEX deployment_admission_owner ON deployment_admission (deployment_id)",
        # A logical environment with policy history keeps it: it cannot be deleted (as with
        # records).
        """CREATE TRIGGER logical_environment_policy_history BEFORE DELETE ON logical_environment
            WHEN EXISTS (SELECT 1 FROM stage_policy WHERE logical_environment_id = OLD.id)
            BEGIN SELECT RAISE(ABORT,
                'this logical environment has stage policy history, which is never deleted');
            END""",
    ]
    for table in (
        "public_key",
        "attestation_verification",
        "stage_policy",
        "stage_policy_key",
        "deployment_admission",
    ):
        statements += append_only(
            table, "trust history never changes", "trust history is never deleted", indent=16
        )
    for sql in statements:
        db.execute_sql(sql)


@migration
def m003_lifecycle(db: peewee.Database) -> None:
    """Lifecycle: lineage of promotions and rollbacks, deployment slots and the indexes of
    point-in-time queries, and the append-only log of scoped variables.

    Point in time: per slot, records never overlap (superseding ends the old record at the
    instant the new one starts), so what was active in a slot at T is the newest record of
    the slot created at or before T, if it had not ended at or before T. `deployment_slot`
    lists every slot ever used (kept by a trigger), and `deployment_key_time` finds that
    record with one index seek per slot, whatever the length of the history.
    """
    statements = [
        # Lineage: the record a promotion copied, the record a rollback restored. Both
        # point back in time (smaller ids), and a record is at most one of the two.
        """ALTER TABLE deployment ADD COLUMN promoted_from INTEGER
            REFERENCES deployment (id) CHECK (promoted_from IS NULL OR promoted_from < id)""",
        """ALTER TABLE deployment ADD COLUMN rollback_of INTEGER
            REFERENCES deployment (id)
            CHECK (rollback_of IS NULL OR (rollback_of < id AND promoted_from IS NULL))""",
        # A promotion copies the same artifact (name, kind, digest) from another slot; a
        # rollback restores the digest of a record of the same slot.
        """CREATE TRIGGER deployment_lineage_valid BEFORE INSERT ON deployment
            WHEN (NEW.promoted_from IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM deployment s WHERE s.id = NEW.promoted_from
                       AND s.deployment_name = NEW.deployment_name AND s.kind = NEW.kind
                       AND s.digest = NEW.digest
                       AND NOT (s.environment_id = NEW.environment_id
                                AND s.logical_environment_id = NEW.logical_environment_id)))
              OR (NEW.rollback_of IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM deployment r WHERE r.id = NEW.rollback_of
                       AND r.environment_id = NEW.environment_id
                       AND r.logical_environment_id = NEW.logical_environment_id
                       AND r.deployment_name = NEW.deployment_name AND r.kind = NEW.kind
                       AND r.digest = NEW.digest))
            BEGIN SELECT RAISE(ABORT, 'lineage must name a record of the same artifact'); END""",
        # m001's deployment_immutable does not know these columns: this one does.
        """CREATE TRIGGER deployment_lineage_immutable BEFORE UPDATE ON deployment
            WHEN NEW.promoted_from IS NOT OLD.promoted_from
              OR NEW.rollback_of IS NOT OLD.rollback_of
            BEGIN SELECT RAISE(ABORT, 'deployment records are immutable history'); END""",
        # Every slot (environment, logical environment, name, kind) that ever had a record.
        """CREATE TABLE deployment_slot (
            id INTEGER PRIMARY KEY,
            environment_id INTEGER NOT NULL REFERENCES environment (id),
            logical_environment_id INTEGER NOT NULL REFERENCES logical_environment (id),
            deployment_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            UNIQUE (environment_id, logical_environment_id, deployment_name, kind)
        )""",
        "CREATE INDEX deployment_slot_logical ON deployment_slot (logical_environment_id)",
        "CREATE INDEX deployment_slot_name ON deployment_slot (deployment_name)",
        """INSERT INTO deployment_slot
                (environment_id, logical_environment_id, deployment_name, kind)
            SELECT DISTINCT environment_id, logical_environment_id, deployment_name, kind
            FROM deployment ORDER BY 1, 2, 3, 4""",
        """CREATE TRIGGER deployment_slot_track AFTER INSERT ON deployment
            WHEN NOT EXISTS (SELECT 1 FROM deployment_slot
                WHERE environment_id = NEW.environment_id
                  AND logical_environment_id = NEW.logical_environment_id
                  AND deployment_name = NEW.deployment_name AND kind = NEW.kind)
            BEGIN INSERT INTO deployment_slot
                    (environment_id, logical_environment_id, deployment_name, kind)
                VALUES (NEW.environment_id, NEW.logical_environment_id, NEW.deployment_name,
                        NEW.kind); END""",
        *append_only(
            "deployment_slot",
            "deployment slots follow the history",
            "deployment slots follow the history",
        ),
        # Point in time: the newest record of a slot created at or before T, by one seek.
        """CREATE INDEX deployment_key_time ON deployment
            (environment_id, logical_environment_id, deployment_name, kind, created_at)""",
        # Active records newest first (list, status, diff), filtered by environment and/or
        # logical environment, without touching ended history: partial indexes hold one
        # entry per slot.
        # (Without them SQLite picks deployment_logical or deployment_key_time for
        # `--logical-env L`, and reads the whole history of the logical environment.)
        """CREATE INDEX deployment_active_created ON deployment (created_at)
            WHERE status = 'deployed'""",
        """CREATE INDEX deployment_active_stage ON deployment (logical_environment_id, created_at)
            WHERE status = 'deployed'""",
        """CREATE INDEX deployment_active_env
            ON deployment (environment_id, logical_environment_id, created_at)
            WHERE status = 'deployed'""",
        # History newest first (--history --limit), and the records that started inside a
        # --since/--until window.
        "CREATE INDEX deployment_created ON deployment (created_at)",
        # Scoped variables: an append-only log of changes. The current value of a variable
        # at a scope is its newest event there. Secret values are stored only encrypted
        # (AES-256-GCM: nonce + ciphertext + tag) with the id of the key.
        _variable_event_table("variable_event", "'set', 'unset'")
        + """
            CHECK (action = 'set' OR (is_secret = 0 AND value IS NULL
                                      AND ciphertext IS NULL AND key_id IS NULL)),
            CHECK (action = 'unset' OR is_secret = 1
                   OR (value IS NOT NULL AND ciphertext IS NULL AND key_id IS NULL)),
            CHECK (action = 'unset' OR is_secret = 0
                   OR (value IS NULL AND ciphertext IS NOT NULL AND key_id IS NOT NULL))
        )""",
        """CREATE INDEX variable_event_scope ON variable_event
            (logical_environment_id, environment_id, deployment_name, name, id)""",
        "CREATE INDEX variable_event_environment ON variable_event (environment_id)",
        *append_only(
            "variable_event", "variable history never changes", "variable history is never deleted"
        ),
    ]
    for sql in statements:
        db.execute_sql(sql)


@migration
def m004_variable_redaction(db: peewee.Database) -> None:
    """Variable redaction: a plain value set by mistake can be redacted, and that is the only change
    the variable history accepts.

    A redaction is its own history line (action 'redacted', naming the entry in
    `redacts`); inserting it blanks the value of that entry and marks it `redacted`, by
    trigger, in the same statement. Every other UPDATE, and every DELETE, is refused.

    SQLite cannot change a table's CHECK constraints, so the table is rebuilt (same ids,
    same rows) with them rewritten for the new action. secure_delete is on meanwhile:
    the dropped table's pages are zeroed, so no old copy of a value survives in the
    file's free pages to defeat a later redaction.
    """
    previous = db.execute_sql("PRAGMA secure_delete").fetchone()[0]
    db.execute_sql("PRAGMA secure_delete = ON")
    columns = (
        "id, logical_environment_id, environment_id, deployment_name, name, action, "
        "is_secret, value, ciphertext, key_id, created_at"
    )
    statements = [
        _variable_event_table("variable_event_v4", "'set', 'unset', 'redacted'")
        + """
            -- On a plain 'set' whose value was redacted: 1.
            redacted INTEGER NOT NULL DEFAULT 0 CHECK (redacted IN (0, 1)),
            -- On a 'redacted' line: the earlier entry whose value it removed.
            redacts INTEGER REFERENCES variable_event (id),
            -- unset and redacted lines carry no value.
            CHECK (action = 'set' OR (is_secret = 0 AND value IS NULL
                                      AND ciphertext IS NULL AND key_id IS NULL)),
            -- A plain value has its text, unless redacted; never a ciphertext.
            CHECK (action <> 'set' OR is_secret = 1
                   OR (ciphertext IS NULL AND key_id IS NULL
                       AND (value IS NULL) = (redacted = 1))),
            -- A secret is only ever stored encrypted, with the id of its key.
            CHECK (action <> 'set' OR is_secret = 0
                   OR (value IS NULL AND ciphertext IS NOT NULL AND key_id IS NOT NULL)),
            CHECK (redacted = 0 OR (action = 'set' AND is_secret = 0)),
            CHECK ((action = 'redacted') = (redacts IS NOT NULL)),
            CHECK (redacts IS NULL OR redacts < id)
        )""",
        f"INSERT INTO variable_event_v4 ({columns}) SELECT {columns} FROM variable_event",
        # Takes m003's indexes and triggers with it.
        "DROP TABLE variable_event",
        "ALTER TABLE variable_event_v4 RENAME TO variable_event",
        """CREATE INDEX variable_event_scope ON variable_event
            (logical_environment_id, environment_id, deployment_name, name, id)""",
        "CREATE INDEX variable_event_environment ON variable_event (environment_id)",
        """CREATE UNIQUE INDEX variable_event_one_redaction ON variable_event (redacts)
            WHERE redacts IS NOT NULL""",
        no_delete("variable_event", "variable history is never deleted"),
        # A redaction names an earlier plain value of the same variable at the same scope,
        # not yet redacted...
        """CREATE TRIGGER variable_event_redaction_valid BEFORE INSERT ON variable_event
            WHEN NEW.action = 'redacted' AND NOT EXISTS (
                SELECT 1 FROM variable_event AS r
                WHERE r.id = NEW.redacts AND r.action = 'set' AND r.is_secret = 0
                  AND r.redacted = 0
                  AND r.logical_environment_id = NEW.logical_environment_id
                  AND r.environment_id IS NEW.environment_id
                  AND r.deployment_name IS NEW.deployment_name AND r.name = NEW.name
                  AND r.created_at <= NEW.created_at)
            BEGIN SELECT RAISE(ABORT,
                'a redaction must name an earlier plain value of the same variable and scope');
            END""",
        # ...and blanks it, in the same statement: no redaction line without the redaction.
        """CREATE TRIGGER variable_event_redact AFTER INSERT ON variable_event
            WHEN NEW.action = 'redacted'
            BEGIN UPDATE variable_event SET value = NULL, redacted = 1
                WHERE id = NEW.redacts; END""",
        # The one UPDATE the history accepts is that blanking, and only with its line.
        """CREATE TRIGGER variable_event_only_redaction BEFORE UPDATE ON variable_event
            WHEN NOT (OLD.action = 'set' AND OLD.is_secret = 0 AND OLD.redacted = 0
                  AND NEW.redacted = 1 AND NEW.value IS NULL
                  AND NEW.id IS OLD.id
                  AND NEW.logical_environment_id IS OLD.logical_environment_id
                  AND NEW.environment_id IS OLD.environment_id
                  AND NEW.deployment_name IS OLD.deployment_name
                  AND NEW.name IS OLD.name AND NEW.action IS OLD.action
                  AND NEW.is_secret IS OLD.is_secret AND NEW.ciphertext IS OLD.ciphertext
                  AND NEW.key_id IS OLD.key_id AND NEW.created_at IS OLD.created_at
                  AND NEW.redacts IS OLD.redacts
                  AND EXISTS (SELECT 1 FROM variable_event
                              WHERE action = 'redacted' AND redacts = OLD.id))
            BEGIN SELECT RAISE(ABORT,
                'variable history never changes, but for the redaction of a plain value');
            END""",
    ]
    try:
        for sql in statements:
            db.execute_sql(sql)
    finally:
        db.execute_sql(f"PRAGMA secure_delete = {int(previous)}")


@migration
def m005_variable_value_salt(db: peewee.Database) -> None:
    """A random salt beside every plain variable value: the event log commits to a value as
    SHA-256(salt || value), which tells nothing about a short value to whoever reads the
    log, and nothing at all once a redaction removes value and salt together.

    ALTER TABLE cannot add a CHECK that existing rows would fail, so the rule (a salt of
    16 bytes in hex exactly where there is a plain value) is kept by triggers, and the
    existing values get their salts here, with m004's only-redaction trigger set aside for
    that one statement and replaced by one that also blanks the salt.
    """
    statements = [
        "ALTER TABLE variable_event ADD COLUMN value_salt TEXT",
        "DROP TRIGGER variable_event_only_redaction",
        "UPDATE variable_event SET value_salt = lower(hex(randomblob(16))) WHERE value IS NOT NULL",
        """CREATE TRIGGER variable_event_salted BEFORE INSERT ON variable_event
            WHEN (NEW.value IS NULL) <> (NEW.value_salt IS NULL)
              OR (NEW.value_salt IS NOT NULL AND (length(NEW.value_salt) <> 32
                  OR NEW.value_salt GLOB '*[^0-9a-f]*'))
            BEGIN SELECT RAISE(ABORT,
                'a plain variable value needs its salt: 32 lowercase hex digits'); END""",
        "DROP TRIGGER variable_event_redact",
        """CREATE TRIGGER variable_event_redact AFTER INSERT ON variable_event
            WHEN NEW.action = 'redacted'
            BEGIN UPDATE variable_event SET value = NULL, value_salt = NULL, redacted = 1
                WHERE id = NEW.redacts; END""",
        """CREATE TRIGGER variable_event_only_redaction BEFORE UPDATE ON variable_event
            WHEN NOT (OLD.action = 'set' AND OLD.is_secret = 0 AND OLD.redacted = 0
                  AND NEW.redacted = 1 AND NEW.value IS NULL AND NEW.value_salt IS NULL
                  AND NEW.id IS OLD.id
                  AND NEW.logical_environment_id IS OLD.logical_environment_id
                  AND NEW.environment_id IS OLD.environment_id
                  AND NEW.deployment_name IS OLD.deployment_name
                  AND NEW.name IS OLD.name AND NEW.action IS OLD.action
                  AND NEW.is_secret IS OLD.is_secret AND NEW.ciphertext IS OLD.ciphertext
                  AND NEW.key_id IS OLD.key_id AND NEW.created_at IS OLD.created_at
                  AND NEW.redacts IS OLD.redacts
                  AND EXISTS (SELECT 1 FROM variable_event
                              WHERE action = 'redacted' AND redacts = OLD.id))
            BEGIN SELECT RAISE(ABORT,
                'variable history never changes, but for the redaction of a plain value');
            END""",
    ]
    for sql in statements:
        db.execute_sql(sql)


@migration
def m006_event_log(db: peewee.Database) -> None:
    """The event log (store/eventlog.py): events, the Merkle tree's interior nodes, tree
    heads and the database's origin, all append-only; then the first event (the origin)
    and one `imported` event per row that exists already."""
    import uuid

    from deploytrack.store import eventlog

    statements = [
        """CREATE TABLE log_origin (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            origin TEXT NOT NULL CHECK (origin LIKE 'deploytrack.local/_%'
                                        AND origin NOT GLOB '*[^!-~]*')
        )""",
        # seq is 1-based and dense: each event follows the one before it.
        """CREATE TABLE log_event (
            seq INTEGER PRIMARY KEY CHECK (seq >= 1),
            time INTEGER NOT NULL,
            type TEXT NOT NULL CHECK (length(type) > 0),
            body BLOB NOT NULL,
            leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
        )""",
        """CREATE TRIGGER log_event_dense BEFORE INSERT ON log_event
            WHEN NEW.seq <> (SELECT coalesce(max(seq), 0) + 1 FROM log_event)
            BEGIN SELECT RAISE(ABORT, 'events are appended in sequence'); END""",
        "CREATE INDEX log_event_time ON log_event (time)",
        """CREATE TABLE log_node (
            level INTEGER NOT NULL CHECK (level >= 1),
            idx INTEGER NOT NULL CHECK (idx >= 0),
            hash BLOB NOT NULL CHECK (length(hash) = 32),
            PRIMARY KEY (level, idx)
        ) WITHOUT ROWID""",
        """CREATE TABLE log_tree_head (
            size INTEGER PRIMARY KEY CHECK (size >= 1),
            root BLOB NOT NULL CHECK (length(root) = 32),
            created_at INTEGER NOT NULL
        )""",
        *append_only(
            "log_origin", "the log origin never changes", "the log origin is never deleted"
        ),
        *append_only("log_event", "logged events never change", "logged events are never deleted"),
        *append_only("log_node", "the log tree never changes", "the log tree is never deleted"),
        *append_only("log_tree_head", "tree heads never change", "tree heads are never deleted"),
    ]
    for sql in statements:
        db.execute_sql(sql)
    eventlog.start(db, f"{eventlog.ORIGIN_PREFIX}{uuid.uuid4()}")


@migration
def m007_identity_verification(db: peewee.Database) -> None:
    """Keyless verifications: a Sigstore bundle's certificate verified to a trusted root for a
    signer identity and OIDC issuer (services/keyless.py), remembered like a key's.

    The trusted root is kept in `blob` under its sha256, so what it vouched for can be
    checked again offline; `identity` is the certificate's subject alternative name that
    matched, `issuer` its OIDC issuer.
    """
    statements = [
        """CREATE TABLE attestation_identity_verification (
            id INTEGER PRIMARY KEY,
            attestation_id INTEGER NOT NULL REFERENCES attestation (id),
            identity TEXT NOT NULL CHECK (length(identity) BETWEEN 1 AND 4096),
            issuer TEXT NOT NULL CHECK (length(issuer) BETWEEN 1 AND 4096),
            trusted_root_digest TEXT NOT NULL REFERENCES blob (digest),
            source TEXT NOT NULL CHECK (source IN ('verify', 'admission')),
            verified_at INTEGER NOT NULL
        )""",
        """CREATE INDEX attestation_identity_verification_owner
            ON attestation_identity_verification (attestation_id)""",
        *append_only(
            "attestation_identity_verification",
            "trust history never changes",
            "trust history is never deleted",
        ),
    ]
    for sql in statements:
        db.execute_sql(sql)


@migration
def m008_stage_policy_identity(db: peewee.Database) -> None:
    """Trusted signer identities of a stage policy, beside its trusted keys: an identity
    (exact, or a regular expression the whole identity must match), its OIDC issuer, and
    the trusted root its certificates must chain to, kept in `blob` so that admission
    verifies offline, on the stored bytes, whatever the installed Sigstore client ships."""
    statements = [
        """CREATE TABLE stage_policy_identity (
            policy_id INTEGER NOT NULL REFERENCES stage_policy (id),
            match TEXT NOT NULL CHECK (match IN ('exact', 'regexp')),
            identity TEXT NOT NULL CHECK (length(identity) BETWEEN 1 AND 4096),
            issuer TEXT NOT NULL CHECK (length(issuer) BETWEEN 1 AND 4096),
            trusted_root_digest TEXT NOT NULL REFERENCES blob (digest),
            PRIMARY KEY (policy_id, match, identity, issuer, trusted_root_digest)
        )""",
        *append_only(
            "stage_policy_identity", "trust history never changes", "trust history is never deleted"
        ),
    ]
    for sql in statements:
        db.execute_sql(sql)


@migration
def m009_admission_identity(db: peewee.Database) -> None:
    """Which keyless verification admitted a record: a rule met by a trusted identity names
    the verification made at admission (identity, issuer, trusted root), as a rule met by a
    trusted key names the key. Never both.

    The new column changes the image of every existing admission: each is logged anew.
    """
    from deploytrack.store import eventlog

    db.execute_sql(
        """ALTER TABLE deployment_admission ADD COLUMN identity_verification_id INTEGER
            REFERENCES attestation_identity_verification (id)
            CHECK (identity_verification_id IS NULL OR public_key_id IS NULL)"""
    )
    eventlog.log_rows_again(db, "deployment_admission", "m009_admission_identity")


@migration
def m010_deployment_source(db: peewee.Database) -> None:
    """Where a record came from: `declared` (record, promote, rollback: what a pipeline
    said it deployed) or `observed` (`deployment sync`: what a cluster was seen running).
    Set on insert and never changed, like the record's other columns; a record from before
    this migration was declared, as nothing else wrote records then.

    Adding the column changes every existing record's image, so each one gets an event
    with its new image (`log verify` replays it), as m006 imported the rows it found.
    """
    from deploytrack.store import eventlog

    statements = [
        """ALTER TABLE deployment ADD COLUMN source TEXT NOT NULL DEFAULT 'declared'
            CHECK (source IN ('declared', 'observed'))""",
        # m001's deployment_immutable shipped and does not know this column: this one does.
        """CREATE TRIGGER deployment_source_immutable BEFORE UPDATE ON deployment
            WHEN NEW.source IS NOT OLD.source
            BEGIN SELECT RAISE(ABORT, 'deployment records are immutable history'); END""",
    ]
    for sql in statements:
        db.execute_sql(sql)
    eventlog.log_rows_again(db, "deployment", "m010_deployment_source")


def applied(db: peewee.Database) -> list[str] | None:
    """Names of applied migrations, or None when the database has no migration table."""
    try:
        cursor = db.execute_sql(f"SELECT name FROM {MIGRATION_TABLE}")
    except peewee.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return [row[0] for row in cursor.fetchall()]


def unknown(applied: list[str]) -> list[str]:
    """The applied migrations this deploytrack does not know: a newer one wrote them."""
    known = set(names())
    return [n for n in applied if n not in known]


def pending(applied: list[str]) -> list[str]:
    """The known migrations not applied yet, in order."""
    done = set(applied)
    return [n for n in names() if n not in done]


def refuse_newer(applied: list[str], path: str) -> None:
    """Refuse a database that records a migration this deploytrack does not know (both
    backends: `pgmigrate` asks the same)."""
    newer = unknown(applied)
    if newer:
        raise StoreError(
            f"database {path} was written by a newer deploytrack (unknown schema migration "
            f"{newer[0]!r}); upgrade deploytrack to use it"
        )


def ensure_current(db: peewee.Database, path: str) -> None:
    done = applied(db)
    if done is not None and len(done) == len(MIGRATIONS):
        # The hot path: one SELECT, no lock.
        refuse_newer(done, path)
        return
    if done is not None:
        refuse_newer(done, path)

    with db.atomic("IMMEDIATE"):
        # Re-read under the write lock: another process may have migrated meanwhile.
        done = applied(db)
        if done is None:
            tables = db.get_tables()
            if tables:
                raise StoreError(
                    f"{path} is an SQLite database of another program (it has tables such as "
                    f"{tables[0]!r}); give --db the path of a deploytrack database"
                )
            db.execute_sql(
                f"CREATE TABLE {MIGRATION_TABLE} "
                "(name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            done = []
        refuse_newer(done, path)
        for step in MIGRATIONS:
            if step.__name__ in done:
                continue
            step(db)
            db.execute_sql(
                f"INSERT INTO {MIGRATION_TABLE} (name, applied_at) VALUES (?, ?)",
                (step.__name__, timeutil.now_us()),
            )


def ensure_wal(db: peewee.Database) -> None:
    """WAL lets readers run beside the one writer. It is a property of the file: set it
    when it is missing (a new database, or one whose creator died before switching).

    Call only on a database `ensure_current` accepted: a foreign file is never changed.
    On a read-only copy (an auditor's) the switch fails and the file keeps its mode.
    """
    mode = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() == "wal":
        return
    try:
        _enable_wal(db)
    except peewee.OperationalError as exc:
        if "readonly" not in str(exc).lower() and "read-only" not in str(exc).lower():
            raise


def _enable_wal(db: peewee.Database) -> None:
    """Switch the file to WAL, waiting for other openers as the busy timeout would.

    The switch upgrades a shared lock to an exclusive one, and SQLite answers "database is
    locked" at once, without its busy handler, when another process holds a lock on the
    file: one that opened the brand-new database at the same moment, say.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute_sql("PRAGMA journal_mode=WAL")
            return
        except peewee.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)
