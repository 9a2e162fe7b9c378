"""The PostgreSQL schema: the SQLite migrations' steps (store/migrations.py), step for step
and under the same names, in PostgreSQL's dialect, with every rule enforced by PostgreSQL
itself (CHECKs, indexes, foreign keys, PL/pgSQL triggers).

`PG_MIGRATIONS` lists the same names in the same order as `migrations.MIGRATIONS`
(tests/test_pgschema.py fails the suite when a SQLite migration has no twin here), so the
bookkeeping table of either backend reads the same. A step is a function `(db) -> None`
that writes its SQL with SQLite's `?` placeholders, as the store's PostgreSQL database
converts them (store/postgres.py); `db migrate` runs the pending steps in order in one
transaction, under an advisory lock. Shipped steps are never edited, as on SQLite.

The conventions, and why:

- Every INTEGER is BIGINT: SQLite's integers are 64-bit, and times are microseconds,
  beyond a 32-bit column.
- `id INTEGER PRIMARY KEY` (a rowid on SQLite) is `id BIGINT PRIMARY KEY` with a BEFORE
  INSERT trigger `<table>_assign_id` calling one function, `deploytrack_assign_id`, that
  gives a row without an id max(id) + 1: exactly SQLite's rowid, so ids match on both
  backends (a sequence would leave a gap after every refused or rolled-back insert, and
  an audit export would not be comparable). max + 1 is safe because writes are serialised
  by the store's write lock; the primary key refuses a duplicate anyway. PostgreSQL fires
  the BEFORE triggers of one event in name order: no other BEFORE INSERT trigger reads
  NEW.id, so the order does not matter (and `_assign_id` sorts first on every table that
  has other BEFORE INSERT triggers: deployment, variable_event).
- TEXT is `TEXT COLLATE "C"`: byte order, as SQLite's BINARY collation, so ORDER BY and
  comparisons give the same answers whatever the server's locale. BLOB is BYTEA. WITHOUT
  ROWID (log_node) has no PostgreSQL meaning and is dropped.
- SQLite's LIKE ignores ASCII case: it is ILIKE here (under the C collation ILIKE folds
  ASCII only, as SQLite). GLOB is the equivalent POSIX regular expression (`~`, case
  sensitive, anchored where GLOB's pattern is). SQLite's null-safe `IS` / `IS NOT` are
  `IS NOT DISTINCT FROM` / `IS DISTINCT FROM`.
- Every CHECK has a name, so a later step can drop and re-add it: m004 and m005 (which
  rebuilt `variable_event` on SQLite, as SQLite cannot change a CHECK) are ALTER TABLEs
  here, with the same end state. m004's `PRAGMA secure_delete` has no PostgreSQL
  meaning and is left out: no table is rebuilt, so no old copy of a value is left in
  free pages by the migration (a redaction's old row version is VACUUM's business).
- Every SQLite trigger is a PL/pgSQL function and a FOR EACH ROW trigger of the same
  name; the WHEN clause is an IF inside the function (PostgreSQL's WHEN cannot hold a
  subquery). A refusal raises SQLite's message, word for word, with SQLSTATE 23000
  (integrity_constraint_violation): the user reads the same line on both backends, and
  the driver reports an IntegrityError, as SQLite's RAISE(ABORT) does. An append-only
  table's pair comes from `append_only()`, as on SQLite.
- Where SQLite (which fires a table's triggers newest first) and PostgreSQL (name order)
  would fire two refusing triggers of one event in a different order, the trigger
  PostgreSQL fires first lets the other one refuse: a statement breaking both rules gets
  SQLite's message (deployment_needs_evidence yields to deployment_policy_in_force,
  variable_event_redaction_valid to variable_event_salted).
- Indexes keep their names, columns and partial WHERE.
"""

from __future__ import annotations

import secrets

import peewee

from deploytrack.store.migrations import Migration, insert_default_logical_environments

# Every PostgreSQL step, in the order of definition: the order they are applied in.
PG_MIGRATIONS: list[Migration] = []

ASSIGN_ID = "deploytrack_assign_id"


def migration(function: Migration) -> Migration:
    """Register `function` as the next PostgreSQL step; a name already taken is refused."""
    if function.__name__ in names():
        raise ValueError(f"two PostgreSQL schema steps are named {function.__name__!r}")
    PG_MIGRATIONS.append(function)
    return function


def names() -> list[str]:
    return [m.__name__ for m in PG_MIGRATIONS]


def _literal(message: str) -> str:
    if "'" in message or "$" in message:
        raise ValueError(f"a trigger message cannot contain a quote or a dollar: {message!r}")
    return f"'{message}'"


def _function(name: str, body: str, *, replace: bool = False) -> str:
    create = "CREATE OR REPLACE" if replace else "CREATE"
    return (
        f"{create} FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
        f"BEGIN\n{body}\nEND\n$fn$"
    )


def _raise(message: str) -> str:
    return (
        f"RAISE EXCEPTION USING MESSAGE = {_literal(message)},"
        " ERRCODE = 'integrity_constraint_violation';"
    )


def _refusing_function(
    name: str, event: str, message: str, condition: str | None, *, replace: bool = False
) -> str:
    refusal = _raise(message)
    if condition is not None:
        refusal = f"IF {condition} THEN\n    {refusal}\nEND IF;"
    row = "OLD" if event == "DELETE" else "NEW"
    return _function(name, f"{refusal}\nRETURN {row};", replace=replace)


def refusing(
    name: str, table: str, event: str, message: str, condition: str | None = None
) -> list[str]:
    """A BEFORE `event` trigger `name` on `table` refusing the row with `message` when
    `condition` (SQLite's WHEN, a PL/pgSQL expression over NEW / OLD) holds, or always."""
    return [
        _refusing_function(name, event, message, condition),
        f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()",
    ]


def no_update(table: str, message: str) -> list[str]:
    return refusing(f"{table}_no_update", table, "UPDATE", message)


def no_delete(table: str, message: str) -> list[str]:
    return refusing(f"{table}_no_delete", table, "DELETE", message)


def append_only(table: str, changes: str, deletes: str) -> list[str]:
    """The trigger pair of an append-only table: every UPDATE refused with `changes`,
    every DELETE with `deletes` (migrations.append_only's twin)."""
    return [*no_update(table, changes), *no_delete(table, deletes)]


def drop_trigger(name: str, table: str) -> list[str]:
    return [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]


def assign_id(table: str) -> str:
    """The trigger giving a new row of `table` without an id SQLite's rowid: max + 1."""
    return (
        f"CREATE TRIGGER {table}_assign_id BEFORE INSERT ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION {ASSIGN_ID}()"
    )


def _run(db: peewee.Database, statements: list[str]) -> None:
    for sql in statements:
        db.execute_sql(sql)


# The rules two triggers share (see the module docstring on firing order).
_POLICY_NOT_IN_FORCE = """NEW.policy_id IS DISTINCT FROM (
        SELECT CASE WHEN action = 'set' THEN id END FROM stage_policy
        WHERE logical_environment_id = NEW.logical_environment_id
        ORDER BY id DESC LIMIT 1)"""

_SALT_MISSING = """(NEW.value IS NULL) <> (NEW.value_salt IS NULL)
      OR (NEW.value_salt IS NOT NULL AND (length(NEW.value_salt) <> 32
          OR NEW.value_salt ~ '[^0-9a-f]'))"""

_VARIABLE_HISTORY_CHANGED = "variable history never changes, but for the redaction of a plain value"


def _needs_evidence(*, yield_to_policy: bool) -> list[str]:
    """deployment_needs_evidence as m001 made it; m002 replaces its function with one that
    yields to deployment_policy_in_force, which SQLite fires first (the newer trigger)."""
    condition = """NOT EXISTS (SELECT 1 FROM attestation_subject WHERE digest = NEW.digest)
          AND NOT EXISTS (SELECT 1 FROM attestation_material WHERE digest = NEW.digest)"""
    if yield_to_policy:
        condition += f"\n          AND NOT ({_POLICY_NOT_IN_FORCE})"
    name, message = "deployment_needs_evidence", "digest is not in the evidence store"
    if yield_to_policy:
        return [_refusing_function(name, "INSERT", message, condition, replace=True)]
    return refusing(name, "deployment", "INSERT", message, condition)


def _only_redaction(salted: bool) -> list[str]:
    """variable_event_only_redaction as m004 made it, and as m005 remade it (the salt
    blanked with the value)."""
    salt = " AND NEW.value_salt IS NULL" if salted else ""
    return refusing(
        "variable_event_only_redaction",
        "variable_event",
        "UPDATE",
        _VARIABLE_HISTORY_CHANGED,
        f"""NOT (OLD.action = 'set' AND OLD.is_secret = 0 AND OLD.redacted = 0
          AND NEW.redacted = 1 AND NEW.value IS NULL{salt}
          AND NEW.id IS NOT DISTINCT FROM OLD.id
          AND NEW.logical_environment_id IS NOT DISTINCT FROM OLD.logical_environment_id
          AND NEW.environment_id IS NOT DISTINCT FROM OLD.environment_id
          AND NEW.deployment_name IS NOT DISTINCT FROM OLD.deployment_name
          AND NEW.name IS NOT DISTINCT FROM OLD.name
          AND NEW.action IS NOT DISTINCT FROM OLD.action
          AND NEW.is_secret IS NOT DISTINCT FROM OLD.is_secret
          AND NEW.ciphertext IS NOT DISTINCT FROM OLD.ciphertext
          AND NEW.key_id IS NOT DISTINCT FROM OLD.key_id
          AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at
          AND NEW.redacts IS NOT DISTINCT FROM OLD.redacts
          AND EXISTS (SELECT 1 FROM variable_event
                      WHERE action = 'redacted' AND redacts = OLD.id))""",
    )


def _redact(salted: bool) -> list[str]:
    """variable_event_redact: inserting a redaction line blanks the entry it names."""
    salt = ", value_salt = NULL" if salted else ""
    name = "variable_event_redact"
    return [
        _function(
            name,
            f"""IF NEW.action = 'redacted' THEN
    UPDATE variable_event SET value = NULL{salt}, redacted = 1 WHERE id = NEW.redacts;
END IF;
RETURN NULL;""",
        ),
        f"CREATE TRIGGER {name} AFTER INSERT ON variable_event"
        f" FOR EACH ROW EXECUTE FUNCTION {name}()",
    ]


@migration
def m001_core(db: peewee.Database) -> None:
    """Environments, logical environments, the evidence store and deployment records."""
    statements = [
        # SQLite's rowid for every `id BIGINT PRIMARY KEY` (see the module docstring).
        # The table is named by the trigger's own variables: one function for all.
        _function(
            ASSIGN_ID,
            """IF NEW.id IS NULL THEN
    EXECUTE 'SELECT coalesce(max(id), 0) + 1 FROM '
        || quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME)
        INTO NEW.id;
END IF;
RETURN NEW;""",
        ),
        """CREATE TABLE environment (
            id BIGINT PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL UNIQUE,
            description TEXT COLLATE "C" NOT NULL DEFAULT '',
            type TEXT COLLATE "C" NOT NULL CONSTRAINT environment_type_check
                CHECK (type IN ('kubernetes', 'ecs', 'server', 'lambda', 'custom')),
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        """CREATE TABLE logical_environment (
            id BIGINT PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL UNIQUE,
            description TEXT COLLATE "C" NOT NULL DEFAULT '',
            is_default BIGINT NOT NULL DEFAULT 0
                CONSTRAINT logical_environment_is_default_check CHECK (is_default IN (0, 1)),
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        """CREATE TABLE blob (
            digest TEXT COLLATE "C" PRIMARY KEY CONSTRAINT blob_digest_check
                CHECK (digest ILIKE 'sha256:%' AND length(digest) = 71),
            size BIGINT NOT NULL CONSTRAINT blob_size_check CHECK (size >= 0),
            content BYTEA NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE attestation (
            id BIGINT PRIMARY KEY,
            digest TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES blob (digest),
            format TEXT COLLATE "C" NOT NULL CONSTRAINT attestation_format_check
                CHECK (format IN ('statement', 'dsse', 'sigstore-bundle')),
            statement_type TEXT COLLATE "C" NOT NULL,
            predicate_type TEXT COLLATE "C" NOT NULL,
            project TEXT COLLATE "C",
            version TEXT COLLATE "C",
            workflow TEXT COLLATE "C",
            imported_at BIGINT NOT NULL
        )""",
        "CREATE INDEX attestation_project ON attestation (project, version)",
        """CREATE TABLE attestation_subject (
            id BIGINT PRIMARY KEY,
            attestation_id BIGINT NOT NULL REFERENCES attestation (id),
            name TEXT COLLATE "C" NOT NULL,
            digest TEXT COLLATE "C" NOT NULL CONSTRAINT attestation_subject_digest_check
                CHECK (digest ILIKE '%_:_%')
        )""",
        "CREATE INDEX attestation_subject_digest ON attestation_subject (digest)",
        "CREATE INDEX attestation_subject_owner ON attestation_subject (attestation_id)",
        """CREATE TABLE attestation_material (
            id BIGINT PRIMARY KEY,
            attestation_id BIGINT NOT NULL REFERENCES attestation (id),
            name TEXT COLLATE "C",
            kind TEXT COLLATE "C",
            digest TEXT COLLATE "C" CONSTRAINT attestation_material_digest_check
                CHECK (digest IS NULL OR digest ILIKE '%_:_%')
        )""",
        "CREATE INDEX attestation_material_digest ON attestation_material (digest)",
        "CREATE INDEX attestation_material_owner ON attestation_material (attestation_id)",
        """CREATE TABLE deployment (
            id BIGINT PRIMARY KEY,
            environment_id BIGINT NOT NULL REFERENCES environment (id),
            logical_environment_id BIGINT NOT NULL REFERENCES logical_environment (id),
            deployment_name TEXT COLLATE "C" NOT NULL
                CONSTRAINT deployment_deployment_name_check CHECK (length(deployment_name) > 0),
            kind TEXT COLLATE "C" NOT NULL CONSTRAINT deployment_kind_check
                CHECK (kind IN ('CONTAINER_IMAGE', 'HELM_CHART')),
            digest TEXT COLLATE "C" NOT NULL CONSTRAINT deployment_digest_check
                CHECK (digest ILIKE 'sha256:%' AND length(digest) = 71),
            artifact_ref TEXT COLLATE "C",
            status TEXT COLLATE "C" NOT NULL CONSTRAINT deployment_status_check
                CHECK (status IN ('deployed', 'superseded', 'decommissioned')),
            created_at BIGINT NOT NULL,
            last_seen_at BIGINT NOT NULL
                CONSTRAINT deployment_last_seen_at_check CHECK (last_seen_at >= created_at),
            ended_at BIGINT CONSTRAINT deployment_ended_at_check
                CHECK (ended_at IS NULL OR ended_at >= created_at),
            superseded_by BIGINT
                REFERENCES deployment (id) DEFERRABLE INITIALLY DEFERRED,
            CONSTRAINT deployment_ended_unless_deployed
                CHECK ((status = 'deployed') = (ended_at IS NULL)),
            CONSTRAINT deployment_superseded_names_successor
                CHECK ((status = 'superseded') = (superseded_by IS NOT NULL)),
            CONSTRAINT deployment_superseded_by_later
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
        *no_delete("deployment", "deployment records are never deleted"),
        *refusing(
            "deployment_immutable",
            "deployment",
            "UPDATE",
            "deployment records are immutable history",
            """OLD.status <> 'deployed'
          OR NEW.id IS DISTINCT FROM OLD.id
          OR NEW.environment_id IS DISTINCT FROM OLD.environment_id
          OR NEW.logical_environment_id IS DISTINCT FROM OLD.logical_environment_id
          OR NEW.deployment_name IS DISTINCT FROM OLD.deployment_name
          OR NEW.kind IS DISTINCT FROM OLD.kind
          OR NEW.digest IS DISTINCT FROM OLD.digest
          OR NEW.artifact_ref IS DISTINCT FROM OLD.artifact_ref
          OR NEW.created_at IS DISTINCT FROM OLD.created_at""",
        ),
        *_needs_evidence(yield_to_policy=False),
    ]
    for table in (
        "environment",
        "logical_environment",
        "attestation",
        "attestation_subject",
        "attestation_material",
        "deployment",
    ):
        statements.append(assign_id(table))
    for table in ("blob", "attestation", "attestation_subject", "attestation_material"):
        statements += append_only(
            table, "stored evidence never changes", "stored evidence is never deleted"
        )
    _run(db, statements)
    insert_default_logical_environments(db)


@migration
def m002_evidence_trust(db: peewee.Database) -> None:
    """Evidence trust: public keys, remembered signature verifications, stage policies with
    their history, and which policy (and which evidence) admitted each deployment record."""
    statements = [
        """CREATE TABLE public_key (
            id BIGINT PRIMARY KEY,
            fingerprint TEXT COLLATE "C" NOT NULL UNIQUE
                CONSTRAINT public_key_fingerprint_check CHECK (fingerprint ILIKE 'SHA256:_%'),
            algorithm TEXT COLLATE "C" NOT NULL,
            pem TEXT COLLATE "C" NOT NULL CONSTRAINT public_key_pem_check
                CHECK (pem ILIKE '-----BEGIN PUBLIC KEY-----%' AND pem NOT ILIKE '%PRIVATE%'),
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE attestation_verification (
            id BIGINT PRIMARY KEY,
            attestation_id BIGINT NOT NULL REFERENCES attestation (id),
            public_key_id BIGINT NOT NULL REFERENCES public_key (id),
            keyid TEXT COLLATE "C" NOT NULL DEFAULT '',
            source TEXT COLLATE "C" NOT NULL CONSTRAINT attestation_verification_source_check
                CHECK (source IN ('verify', 'create', 'admission')),
            verified_at BIGINT NOT NULL
        )""",
        """CREATE INDEX attestation_verification_owner
            ON attestation_verification (attestation_id, public_key_id)""",
        """CREATE TABLE stage_policy (
            id BIGINT PRIMARY KEY,
            logical_environment_id BIGINT NOT NULL REFERENCES logical_environment (id),
            action TEXT COLLATE "C" NOT NULL
                CONSTRAINT stage_policy_action_check CHECK (action IN ('set', 'clear')),
            required_predicates TEXT COLLATE "C" NOT NULL DEFAULT '[]'
                CONSTRAINT stage_policy_required_predicates_check
                CHECK (required_predicates ILIKE '[%]'),
            created_at BIGINT NOT NULL,
            CONSTRAINT stage_policy_clear_requires_nothing
                CHECK (action = 'set' OR required_predicates = '[]')
        )""",
        "CREATE INDEX stage_policy_stage ON stage_policy (logical_environment_id, id)",
        """CREATE TABLE stage_policy_key (
            policy_id BIGINT NOT NULL REFERENCES stage_policy (id),
            public_key_id BIGINT NOT NULL REFERENCES public_key (id),
            PRIMARY KEY (policy_id, public_key_id)
        )""",
        "ALTER TABLE deployment ADD COLUMN policy_id BIGINT REFERENCES stage_policy (id)",
        *refusing(
            "deployment_policy_immutable",
            "deployment",
            "UPDATE",
            "deployment records are immutable history",
            "NEW.policy_id IS DISTINCT FROM OLD.policy_id",
        ),
        *refusing(
            "deployment_policy_in_force",
            "deployment",
            "INSERT",
            "a deployment record must name the stage policy in force that admitted it",
            _POLICY_NOT_IN_FORCE,
        ),
        *_needs_evidence(yield_to_policy=True),
        """CREATE TABLE deployment_admission (
            id BIGINT PRIMARY KEY,
            deployment_id BIGINT NOT NULL REFERENCES deployment (id),
            requirement TEXT COLLATE "C" NOT NULL,
            attestation_id BIGINT NOT NULL REFERENCES attestation (id),
            public_key_id BIGINT REFERENCES public_key (id)
        )""",
        "CREATE INDEX deployment_admission_owner ON deployment_admission (deployment_id)",
        *refusing(
            "logical_environment_policy_history",
            "logical_environment",
            "DELETE",
            "this logical environment has stage policy history, which is never deleted",
            "EXISTS (SELECT 1 FROM stage_policy WHERE logical_environment_id = OLD.id)",
        ),
    ]
    for table in ("public_key", "attestation_verification", "stage_policy", "deployment_admission"):
        statements.append(assign_id(table))
    for table in (
        "public_key",
        "attestation_verification",
        "stage_policy",
        "stage_policy_key",
        "deployment_admission",
    ):
        statements += append_only(
            table, "trust history never changes", "trust history is never deleted"
        )
    _run(db, statements)


# The CHECKs of variable_event that m004 replaced (named, so that m004 can drop them).
_VARIABLE_EVENT_M003_CHECKS = {
    "variable_event_unset_carries_nothing": """action = 'set' OR (is_secret = 0
            AND value IS NULL AND ciphertext IS NULL AND key_id IS NULL)""",
    "variable_event_plain_value": """action = 'unset' OR is_secret = 1
            OR (value IS NOT NULL AND ciphertext IS NULL AND key_id IS NULL)""",
    "variable_event_secret_encrypted": """action = 'unset' OR is_secret = 0
            OR (value IS NULL AND ciphertext IS NOT NULL AND key_id IS NOT NULL)""",
}

_VARIABLE_EVENT_M004_CHECKS = {
    # unset and redacted lines carry no value.
    "variable_event_only_set_carries_value": """action = 'set' OR (is_secret = 0
            AND value IS NULL AND ciphertext IS NULL AND key_id IS NULL)""",
    # A plain value has its text, unless redacted; never a ciphertext.
    "variable_event_plain_value_unless_redacted": """action <> 'set' OR is_secret = 1
            OR (ciphertext IS NULL AND key_id IS NULL AND (value IS NULL) = (redacted = 1))""",
    # A secret is only ever stored encrypted, with the id of its key.
    "variable_event_secret_only_encrypted": """action <> 'set' OR is_secret = 0
            OR (value IS NULL AND ciphertext IS NOT NULL AND key_id IS NOT NULL)""",
    "variable_event_redacted_plain_set": "redacted = 0 OR (action = 'set' AND is_secret = 0)",
    "variable_event_redaction_names_entry": "(action = 'redacted') = (redacts IS NOT NULL)",
    "variable_event_redacts_earlier": "redacts IS NULL OR redacts < id",
}


@migration
def m003_lifecycle(db: peewee.Database) -> None:
    """Lifecycle: lineage of promotions and rollbacks, deployment slots and the indexes of
    point-in-time queries, and the append-only log of scoped variables."""
    checks = ",\n".join(
        f"CONSTRAINT {name} CHECK ({rule})" for name, rule in _VARIABLE_EVENT_M003_CHECKS.items()
    )
    statements = [
        "ALTER TABLE deployment ADD COLUMN promoted_from BIGINT REFERENCES deployment (id)",
        """ALTER TABLE deployment ADD CONSTRAINT deployment_promoted_from_check
            CHECK (promoted_from IS NULL OR promoted_from < id)""",
        "ALTER TABLE deployment ADD COLUMN rollback_of BIGINT REFERENCES deployment (id)",
        """ALTER TABLE deployment ADD CONSTRAINT deployment_rollback_of_check
            CHECK (rollback_of IS NULL OR (rollback_of < id AND promoted_from IS NULL))""",
        *refusing(
            "deployment_lineage_valid",
            "deployment",
            "INSERT",
            "lineage must name a record of the same artifact",
            """(NEW.promoted_from IS NOT NULL AND NOT EXISTS (
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
                   AND r.digest = NEW.digest))""",
        ),
        *refusing(
            "deployment_lineage_immutable",
            "deployment",
            "UPDATE",
            "deployment records are immutable history",
            """NEW.promoted_from IS DISTINCT FROM OLD.promoted_from
          OR NEW.rollback_of IS DISTINCT FROM OLD.rollback_of""",
        ),
        """CREATE TABLE deployment_slot (
            id BIGINT PRIMARY KEY,
            environment_id BIGINT NOT NULL REFERENCES environment (id),
            logical_environment_id BIGINT NOT NULL REFERENCES logical_environment (id),
            deployment_name TEXT COLLATE "C" NOT NULL,
            kind TEXT COLLATE "C" NOT NULL,
            UNIQUE (environment_id, logical_environment_id, deployment_name, kind)
        )""",
        assign_id("deployment_slot"),
        "CREATE INDEX deployment_slot_logical ON deployment_slot (logical_environment_id)",
        "CREATE INDEX deployment_slot_name ON deployment_slot (deployment_name)",
        """INSERT INTO deployment_slot
                (environment_id, logical_environment_id, deployment_name, kind)
            SELECT DISTINCT environment_id, logical_environment_id, deployment_name, kind
            FROM deployment ORDER BY 1, 2, 3, 4""",
        _function(
            "deployment_slot_track",
            """IF NOT EXISTS (SELECT 1 FROM deployment_slot
        WHERE environment_id = NEW.environment_id
          AND logical_environment_id = NEW.logical_environment_id
          AND deployment_name = NEW.deployment_name AND kind = NEW.kind) THEN
    INSERT INTO deployment_slot (environment_id, logical_environment_id, deployment_name, kind)
        VALUES (NEW.environment_id, NEW.logical_environment_id, NEW.deployment_name, NEW.kind);
END IF;
RETURN NULL;""",
        ),
        """CREATE TRIGGER deployment_slot_track AFTER INSERT ON deployment
            FOR EACH ROW EXECUTE FUNCTION deployment_slot_track()""",
        *append_only(
            "deployment_slot",
            "deployment slots follow the history",
            "deployment slots follow the history",
        ),
        """CREATE INDEX deployment_key_time ON deployment
            (environment_id, logical_environment_id, deployment_name, kind, created_at)""",
        """CREATE INDEX deployment_active_created ON deployment (created_at)
            WHERE status = 'deployed'""",
        """CREATE INDEX deployment_active_stage ON deployment (logical_environment_id, created_at)
            WHERE status = 'deployed'""",
        """CREATE INDEX deployment_active_env
            ON deployment (environment_id, logical_environment_id, created_at)
            WHERE status = 'deployed'""",
        "CREATE INDEX deployment_created ON deployment (created_at)",
        f"""CREATE TABLE variable_event (
            id BIGINT PRIMARY KEY,
            logical_environment_id BIGINT NOT NULL REFERENCES logical_environment (id),
            environment_id BIGINT REFERENCES environment (id),
            deployment_name TEXT COLLATE "C" CONSTRAINT variable_event_deployment_name_check
                CHECK (deployment_name IS NULL OR length(deployment_name) BETWEEN 1 AND 253),
            name TEXT COLLATE "C" NOT NULL CONSTRAINT variable_event_name_check CHECK (
                length(name) BETWEEN 1 AND 255
                AND name !~ '[^A-Za-z0-9_]' AND name !~ '^[0-9]'
                AND upper(substr(name, 1, 12)) <> 'DEPLOYTRACK_'),
            action TEXT COLLATE "C" NOT NULL
                CONSTRAINT variable_event_action_check CHECK (action IN ('set', 'unset')),
            is_secret BIGINT NOT NULL DEFAULT 0
                CONSTRAINT variable_event_is_secret_check CHECK (is_secret IN (0, 1)),
            value TEXT COLLATE "C",
            ciphertext BYTEA,
            key_id TEXT COLLATE "C",
            created_at BIGINT NOT NULL,
            {checks}
        )""",
        assign_id("variable_event"),
        """CREATE INDEX variable_event_scope ON variable_event
            (logical_environment_id, environment_id, deployment_name, name, id)""",
        "CREATE INDEX variable_event_environment ON variable_event (environment_id)",
        *append_only(
            "variable_event", "variable history never changes", "variable history is never deleted"
        ),
    ]
    _run(db, statements)


_REDACTION_INVALID = """NEW.action = 'redacted' AND NOT EXISTS (
            SELECT 1 FROM variable_event AS r
            WHERE r.id = NEW.redacts AND r.action = 'set' AND r.is_secret = 0
              AND r.redacted = 0
              AND r.logical_environment_id = NEW.logical_environment_id
              AND r.environment_id IS NOT DISTINCT FROM NEW.environment_id
              AND r.deployment_name IS NOT DISTINCT FROM NEW.deployment_name
              AND r.name = NEW.name
              AND r.created_at <= NEW.created_at)"""


@migration
def m004_variable_redaction(db: peewee.Database) -> None:
    """Variable redaction: a plain value set by mistake can be redacted, and that is the only
    change the variable history accepts.

    SQLite rebuilt the table to change its CHECKs; PostgreSQL changes them in place, to the
    same end state: the same columns in the same order, the same rules, and the triggers
    SQLite's rebuild left (m003's no_delete, unchanged; its no_update replaced by
    variable_event_only_redaction). SQLite's `PRAGMA secure_delete` around the rebuild has
    no PostgreSQL meaning: nothing is rebuilt here, so there is nothing to zero.
    """
    drop = ", ".join(
        f"DROP CONSTRAINT {name}"
        for name in ("variable_event_action_check", *_VARIABLE_EVENT_M003_CHECKS)
    )
    add = ", ".join(
        f"ADD CONSTRAINT {name} CHECK ({rule})"
        for name, rule in _VARIABLE_EVENT_M004_CHECKS.items()
    )
    statements = [
        *drop_trigger("variable_event_no_update", "variable_event"),
        # On a plain 'set' whose value was redacted: 1. On a 'redacted' line: the earlier
        # entry whose value it removed.
        f"""ALTER TABLE variable_event
            ADD COLUMN redacted BIGINT NOT NULL DEFAULT 0
                CONSTRAINT variable_event_redacted_check CHECK (redacted IN (0, 1)),
            ADD COLUMN redacts BIGINT REFERENCES variable_event (id),
            {drop},
            ADD CONSTRAINT variable_event_action_check
                CHECK (action IN ('set', 'unset', 'redacted')),
            {add}""",
        """CREATE UNIQUE INDEX variable_event_one_redaction ON variable_event (redacts)
            WHERE redacts IS NOT NULL""",
        # SQLite fires variable_event_salted (m005) before this one: see m005.
        *refusing(
            "variable_event_redaction_valid",
            "variable_event",
            "INSERT",
            "a redaction must name an earlier plain value of the same variable and scope",
            _REDACTION_INVALID,
        ),
        *_redact(salted=False),
        *_only_redaction(salted=False),
    ]
    _run(db, statements)


@migration
def m005_variable_value_salt(db: peewee.Database) -> None:
    """A random salt beside every plain variable value (see migrations.m005), kept by a
    trigger; the redaction blanks it with the value."""
    _run(
        db,
        [
            'ALTER TABLE variable_event ADD COLUMN value_salt TEXT COLLATE "C"',
            *drop_trigger("variable_event_only_redaction", "variable_event"),
        ],
    )
    # SQLite's randomblob(16) has no built-in twin without pgcrypto: the salts come from
    # Python's CSPRNG, one per row. (A PostgreSQL database is migrated from m001 in one
    # transaction, so no plain value exists yet when this runs; the step is complete
    # all the same.)
    rows = db.execute_sql("SELECT id FROM variable_event WHERE value IS NOT NULL").fetchall()
    for (row_id,) in rows:
        db.execute_sql(
            "UPDATE variable_event SET value_salt = ? WHERE id = ?",
            (secrets.token_hex(16), row_id),
        )
    _run(
        db,
        [
            *refusing(
                "variable_event_salted",
                "variable_event",
                "INSERT",
                "a plain variable value needs its salt: 32 lowercase hex digits",
                _SALT_MISSING,
            ),
            # SQLite fires this (newer) trigger before variable_event_redaction_valid; in
            # name order PostgreSQL fires it after: the older one yields where both refuse.
            _refusing_function(
                "variable_event_redaction_valid",
                "INSERT",
                "a redaction must name an earlier plain value of the same variable and scope",
                f"{_REDACTION_INVALID}\n          AND NOT ({_SALT_MISSING})",
                replace=True,
            ),
            *drop_trigger("variable_event_redact", "variable_event"),
            *_redact(salted=True),
            *_only_redaction(salted=True),
        ],
    )


@migration
def m006_event_log(db: peewee.Database) -> None:
    """The event log (store/eventlog.py): events, the Merkle tree's interior nodes, tree
    heads and the database's origin, all append-only; then the first event (the origin)
    and one `imported` event per row that exists already."""
    import uuid

    from deploytrack.store import eventlog

    statements = [
        """CREATE TABLE log_origin (
            id BIGINT PRIMARY KEY CONSTRAINT log_origin_id_check CHECK (id = 1),
            origin TEXT COLLATE "C" NOT NULL CONSTRAINT log_origin_origin_check
                CHECK (origin ILIKE 'deploytrack.local/_%' AND origin !~ '[^!-~]')
        )""",
        assign_id("log_origin"),
        # seq is 1-based and dense: each event follows the one before it.
        """CREATE TABLE log_event (
            seq BIGINT PRIMARY KEY CONSTRAINT log_event_seq_check CHECK (seq >= 1),
            time BIGINT NOT NULL,
            type TEXT COLLATE "C" NOT NULL CONSTRAINT log_event_type_check
                CHECK (length(type) > 0),
            body BYTEA NOT NULL,
            leaf_hash BYTEA NOT NULL
                CONSTRAINT log_event_leaf_hash_check CHECK (length(leaf_hash) = 32)
        )""",
        # A seq left out is refused too: SQLite's trigger sees -1 for it.
        *refusing(
            "log_event_dense",
            "log_event",
            "INSERT",
            "events are appended in sequence",
            "NEW.seq IS DISTINCT FROM (SELECT coalesce(max(seq), 0) + 1 FROM log_event)",
        ),
        "CREATE INDEX log_event_time ON log_event (time)",
        """CREATE TABLE log_node (
            level BIGINT NOT NULL CONSTRAINT log_node_level_check CHECK (level >= 1),
            idx BIGINT NOT NULL CONSTRAINT log_node_idx_check CHECK (idx >= 0),
            hash BYTEA NOT NULL CONSTRAINT log_node_hash_check CHECK (length(hash) = 32),
            PRIMARY KEY (level, idx)
        )""",
        """CREATE TABLE log_tree_head (
            size BIGINT PRIMARY KEY CONSTRAINT log_tree_head_size_check CHECK (size >= 1),
            root BYTEA NOT NULL CONSTRAINT log_tree_head_root_check CHECK (length(root) = 32),
            created_at BIGINT NOT NULL
        )""",
        *append_only(
            "log_origin", "the log origin never changes", "the log origin is never deleted"
        ),
        *append_only("log_event", "logged events never change", "logged events are never deleted"),
        *append_only("log_node", "the log tree never changes", "the log tree is never deleted"),
        *append_only("log_tree_head", "tree heads never change", "tree heads are never deleted"),
    ]
    _run(db, statements)
    eventlog.start(db, f"{eventlog.ORIGIN_PREFIX}{uuid.uuid4()}")


@migration
def m007_identity_verification(db: peewee.Database) -> None:
    """Keyless verifications (see migrations.m007)."""
    _run(
        db,
        [
            """CREATE TABLE attestation_identity_verification (
            id BIGINT PRIMARY KEY,
            attestation_id BIGINT NOT NULL REFERENCES attestation (id),
            identity TEXT COLLATE "C" NOT NULL
                CONSTRAINT attestation_identity_verification_identity_check
                CHECK (length(identity) BETWEEN 1 AND 4096),
            issuer TEXT COLLATE "C" NOT NULL
                CONSTRAINT attestation_identity_verification_issuer_check
                CHECK (length(issuer) BETWEEN 1 AND 4096),
            trusted_root_digest TEXT COLLATE "C" NOT NULL REFERENCES blob (digest),
            source TEXT COLLATE "C" NOT NULL
                CONSTRAINT attestation_identity_verification_source_check
                CHECK (source IN ('verify', 'admission')),
            verified_at BIGINT NOT NULL
        )""",
            assign_id("attestation_identity_verification"),
            """CREATE INDEX attestation_identity_verification_owner
            ON attestation_identity_verification (attestation_id)""",
            *append_only(
                "attestation_identity_verification",
                "trust history never changes",
                "trust history is never deleted",
            ),
        ],
    )


@migration
def m008_stage_policy_identity(db: peewee.Database) -> None:
    """Trusted signer identities of a stage policy (see migrations.m008)."""
    _run(
        db,
        [
            """CREATE TABLE stage_policy_identity (
            policy_id BIGINT NOT NULL REFERENCES stage_policy (id),
            match TEXT COLLATE "C" NOT NULL
                CONSTRAINT stage_policy_identity_match_check CHECK (match IN ('exact', 'regexp')),
            identity TEXT COLLATE "C" NOT NULL CONSTRAINT stage_policy_identity_identity_check
                CHECK (length(identity) BETWEEN 1 AND 4096),
            issuer TEXT COLLATE "C" NOT NULL CONSTRAINT stage_policy_identity_issuer_check
                CHECK (length(issuer) BETWEEN 1 AND 4096),
            trusted_root_digest TEXT COLLATE "C" NOT NULL REFERENCES blob (digest),
            PRIMARY KEY (policy_id, match, identity, issuer, trusted_root_digest)
        )""",
            *append_only(
                "stage_policy_identity",
                "trust history never changes",
                "trust history is never deleted",
            ),
        ],
    )


@migration
def m009_admission_identity(db: peewee.Database) -> None:
    """Which keyless verification admitted a record (see migrations.m009); every existing
    admission is logged anew with its new image."""
    from deploytrack.store import eventlog

    _run(
        db,
        [
            """ALTER TABLE deployment_admission ADD COLUMN identity_verification_id BIGINT
            REFERENCES attestation_identity_verification (id)""",
            """ALTER TABLE deployment_admission
            ADD CONSTRAINT deployment_admission_identity_verification_id_check
            CHECK (identity_verification_id IS NULL OR public_key_id IS NULL)""",
        ],
    )
    eventlog.log_rows_again(db, "deployment_admission", "m009_admission_identity")


@migration
def m010_deployment_source(db: peewee.Database) -> None:
    """Where a record came from, declared or observed (see migrations.m010); every existing
    record is logged anew with its new image."""
    from deploytrack.store import eventlog

    _run(
        db,
        [
            """ALTER TABLE deployment ADD COLUMN source TEXT COLLATE "C" NOT NULL
            DEFAULT 'declared' CONSTRAINT deployment_source_check
            CHECK (source IN ('declared', 'observed'))""",
            *refusing(
                "deployment_source_immutable",
                "deployment",
                "UPDATE",
                "deployment records are immutable history",
                "NEW.source IS DISTINCT FROM OLD.source",
            ),
        ],
    )
    eventlog.log_rows_again(db, "deployment", "m010_deployment_source")
