"""A PostgreSQL refusal in SQLite's words: the user reads the same line whichever backend
refused a write (docs/database.md, "PostgreSQL schema").

A trigger of the PostgreSQL schema (store/pgschema.py) raises SQLite's message itself; a
constraint cannot, so `sqlite_message` words PostgreSQL's constraint errors as SQLite
does, from the names the error carries (never the row's values, which PostgreSQL's
DETAIL shows). A leaf of the store: store/postgres.py's translation of driver errors
imports it, and it imports nothing of the store.
"""

from __future__ import annotations

import re
from typing import Any

# SQLite names a failed CHECK by its text, PostgreSQL by its name: SQLite's text of every
# CHECK of the schema (whitespace collapsed), by its name here, so that a refusal reads the
# same on both backends. tests/test_pgschema.py compares each with the message SQLite
# gives, and fails for a CHECK of store/pgschema.py without its text here.
SQLITE_CHECKS = {
    "attestation_format_check": "format IN ('statement', 'dsse', 'sigstore-bundle')",
    "attestation_identity_verification_identity_check": "length(identity) BETWEEN 1 AND 4096",
    "attestation_identity_verification_issuer_check": "length(issuer) BETWEEN 1 AND 4096",
    "attestation_identity_verification_source_check": "source IN ('verify', 'admission')",
    "attestation_material_digest_check": "digest IS NULL OR digest LIKE '%_:_%'",
    "attestation_subject_digest_check": "digest LIKE '%_:_%'",
    "attestation_verification_source_check": "source IN ('verify', 'create', 'admission')",
    "blob_digest_check": "digest LIKE 'sha256:%' AND length(digest) = 71",
    "blob_size_check": "size >= 0",
    "deployment_admission_identity_verification_id_check": (
        "identity_verification_id IS NULL OR public_key_id IS NULL"
    ),
    "deployment_deployment_name_check": "length(deployment_name) > 0",
    "deployment_digest_check": "digest LIKE 'sha256:%' AND length(digest) = 71",
    "deployment_ended_at_check": "ended_at IS NULL OR ended_at >= created_at",
    "deployment_ended_unless_deployed": "(status = 'deployed') = (ended_at IS NULL)",
    "deployment_kind_check": "kind IN ('CONTAINER_IMAGE', 'HELM_CHART')",
    "deployment_last_seen_at_check": "last_seen_at >= created_at",
    "deployment_promoted_from_check": "promoted_from IS NULL OR promoted_from < id",
    "deployment_rollback_of_check": (
        "rollback_of IS NULL OR (rollback_of < id AND promoted_from IS NULL)"
    ),
    "deployment_source_check": "source IN ('declared', 'observed')",
    "deployment_status_check": "status IN ('deployed', 'superseded', 'decommissioned')",
    "deployment_superseded_by_later": "superseded_by IS NULL OR superseded_by > id",
    "deployment_superseded_names_successor": (
        "(status = 'superseded') = (superseded_by IS NOT NULL)"
    ),
    "environment_type_check": "type IN ('kubernetes', 'ecs', 'server', 'lambda', 'custom')",
    "log_event_leaf_hash_check": "length(leaf_hash) = 32",
    "log_event_seq_check": "seq >= 1",
    "log_event_type_check": "length(type) > 0",
    "log_node_hash_check": "length(hash) = 32",
    "log_node_idx_check": "idx >= 0",
    "log_node_level_check": "level >= 1",
    "log_origin_id_check": "id = 1",
    "log_origin_origin_check": "origin LIKE 'deploytrack.local/_%' AND origin NOT GLOB '*[^!-~]*'",
    "log_tree_head_root_check": "length(root) = 32",
    "log_tree_head_size_check": "size >= 1",
    "logical_environment_is_default_check": "is_default IN (0, 1)",
    "public_key_fingerprint_check": "fingerprint LIKE 'SHA256:_%'",
    "public_key_pem_check": "pem LIKE '-----BEGIN PUBLIC KEY-----%' AND pem NOT LIKE '%PRIVATE%'",
    "stage_policy_action_check": "action IN ('set', 'clear')",
    "stage_policy_clear_requires_nothing": "action = 'set' OR required_predicates = '[]'",
    "stage_policy_identity_identity_check": "length(identity) BETWEEN 1 AND 4096",
    "stage_policy_identity_issuer_check": "length(issuer) BETWEEN 1 AND 4096",
    "stage_policy_identity_match_check": "match IN ('exact', 'regexp')",
    "stage_policy_required_predicates_check": "required_predicates LIKE '[%]'",
    "variable_event_action_check": "action IN ('set', 'unset', 'redacted')",
    "variable_event_deployment_name_check": (
        "deployment_name IS NULL OR length(deployment_name) BETWEEN 1 AND 253"
    ),
    "variable_event_is_secret_check": "is_secret IN (0, 1)",
    "variable_event_name_check": (
        "length(name) BETWEEN 1 AND 255 AND name NOT GLOB '*[^A-Za-z0-9_]*' AND name NOT "
        "GLOB '[0-9]*' AND upper(substr(name, 1, 12)) <> 'DEPLOYTRACK_'"
    ),
    "variable_event_only_set_carries_value": (
        "action = 'set' OR (is_secret = 0 AND value IS NULL AND ciphertext IS NULL AND "
        "key_id IS NULL)"
    ),
    "variable_event_plain_value_unless_redacted": (
        "action <> 'set' OR is_secret = 1 OR (ciphertext IS NULL AND key_id IS NULL AND "
        "(value IS NULL) = (redacted = 1))"
    ),
    "variable_event_redacted_check": "redacted IN (0, 1)",
    "variable_event_redacted_plain_set": "redacted = 0 OR (action = 'set' AND is_secret = 0)",
    "variable_event_redaction_names_entry": "(action = 'redacted') = (redacts IS NOT NULL)",
    "variable_event_redacts_earlier": "redacts IS NULL OR redacts < id",
    "variable_event_secret_only_encrypted": (
        "action <> 'set' OR is_secret = 0 OR (value IS NULL AND ciphertext IS NOT NULL "
        "AND key_id IS NOT NULL)"
    ),
}


def sqlite_message(diag: Any) -> str | None:
    """SQLite's words for the constraint PostgreSQL refused a row by (`diag`: the error's
    psycopg Diagnostic), or None when it was none (a trigger's refusal already carries
    SQLite's message). Only names are read from the error, never the row's values."""
    state = diag.sqlstate
    if state == "23514":
        text = SQLITE_CHECKS.get(diag.constraint_name or "")
        return None if text is None else f"CHECK constraint failed: {text}"
    if state == "23505":
        # "Key (a, b)=(values) already exists.": the column names only.
        key = re.match(r"Key \(([^()]*)\)=\(", diag.message_detail or "")
        if key is None or not diag.table_name:
            return None
        columns = ", ".join(f"{diag.table_name}.{c}" for c in key[1].split(", "))
        return f"UNIQUE constraint failed: {columns}"
    if state == "23502" and diag.table_name and diag.column_name:
        return f"NOT NULL constraint failed: {diag.table_name}.{diag.column_name}"
    if state == "23503":
        return "FOREIGN KEY constraint failed"
    return None
