"""Scoped variables (Compartment's environment variables), with encrypted secrets.

Scopes, most specific first: (logical environment, environment, deployment) > (logical
environment, deployment) > (logical environment, environment) > (logical environment).
Logical environments never inherit from one another: every query here is bounded by one.

Storage is an append-only log of changes (`variable_event`); the current value of a
variable at a scope is its newest event there, when that event is a `set`. So the history
an audit asks for ("what configuration applied when") is the data itself, not a copy.

Secret values are encrypted (AES-256-GCM, deploytrack/crypto/secrets.py) before they reach
the store; the database holds the ciphertext and the key's id, never the plaintext. The
ciphertext is bound (associated data) to its logical environment, environment, deployment
and name, so one copied to another variable or scope does not decrypt.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Any, cast

from peewee import fn

from deploytrack import timeutil
from deploytrack.services import ServiceError, validate
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.services.views.variables import (
    Redaction,
    ResolvedVariables,
    Scope,
    VariableChange,
    VariableView,
)
from deploytrack.store import Store
from deploytrack.store.models import Environment, LogicalEnvironment, VariableEvent

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TypeGuard

    from deploytrack.crypto.secrets import SecretBox
    from deploytrack.services.views.variables import VariableAction

MASK = "********"
SET = "set"
UNSET = "unset"
REDACTED = "redacted"
_MAX_ID = 2**63 - 1


def _associated(stage_id: int, env_id: int | None, deployment_name: str | None, name: str) -> bytes:
    """What a secret's ciphertext is bound to: its variable and exact scope."""
    env = "" if env_id is None else str(env_id)
    return f"deploytrack-variable-v1\0{stage_id}\0{env}\0{deployment_name or ''}\0{name}".encode()


def _event_associated(event: VariableEvent) -> bytes:
    return _associated(
        event.logical_environment_id, event.environment_id, event.deployment_name, event.name
    )


class _Resolved:
    """A scope's names as ids (unknown names refused)."""

    def __init__(self, store: Store, scope: Scope) -> None:
        self.scope = scope
        self.stage = logical_environments.get(store, scope.logical_environment)
        self.env = environments.get(store, scope.environment) if scope.environment else None
        if scope.deployment_name is not None:
            validate.deployment_name(scope.deployment_name)

    @property
    def env_id(self) -> int | None:
        return self.env.id if self.env is not None else None

    @property
    def exact(self) -> Any:
        """Events at exactly this scope."""
        env = (
            VariableEvent.environment.is_null()
            if self.env is None
            else VariableEvent.environment == self.env.id
        )
        deployment = (
            VariableEvent.deployment_name.is_null()
            if self.scope.deployment_name is None
            else VariableEvent.deployment_name == self.scope.deployment_name
        )
        return (VariableEvent.logical_environment == self.stage.id) & env & deployment

    @property
    def applying(self) -> Any:
        """Events of the logical environment at every scope that applies to this one: an environment
        (deployment) in the scope keeps only events without one or with the same."""
        condition = VariableEvent.logical_environment == self.stage.id
        if self.env is not None:
            condition &= VariableEvent.environment.is_null() | (
                VariableEvent.environment == self.env.id
            )
        if self.scope.deployment_name is not None:
            condition &= VariableEvent.deployment_name.is_null() | (
                VariableEvent.deployment_name == self.scope.deployment_name
            )
        return condition


def _current_at(where: Any, name: str) -> VariableEvent | None:
    """The newest change of `name` under `where` (redaction lines are not changes of the
    value: they remove an old one)."""
    newest: VariableEvent | None = (
        VariableEvent.select()
        .where(where & (VariableEvent.name == name) & (VariableEvent.action != REDACTED))
        .order_by(VariableEvent.id.desc())
        .first()
    )
    return newest


def _has_value(event: VariableEvent | None) -> TypeGuard[VariableEvent]:
    """Whether the newest change at a scope leaves the variable a value there: a set whose
    value was not redacted (a redacted current value reads as an unset)."""
    return event is not None and event.action == SET and not event.redacted


def _newest_per_scope(where: Any = None) -> Any:
    """The id of the newest change of each variable at each scope (under `where`)."""
    query = VariableEvent.select(fn.MAX(VariableEvent.id)).where(
        VariableEvent.action != REDACTED
        if where is None
        else where & (VariableEvent.action != REDACTED)
    )
    return query.group_by(
        VariableEvent.logical_environment,
        VariableEvent.environment,
        VariableEvent.deployment_name,
        VariableEvent.name,
    )


def _box(*, create: bool) -> SecretBox:
    from deploytrack.crypto.secrets import SecretBox

    return SecretBox.load(create=create)


def _secrets_in_force() -> list[tuple[VariableEvent, Scope]]:
    """The secrets whose value is current at their scope, in every logical environment, newest
    first."""
    query = (
        VariableEvent.select()
        .where(
            VariableEvent.id.in_(_newest_per_scope())
            # Compared, not used bare: the column is an integer, and PostgreSQL (unlike
            # SQLite) takes no integer for a truth value.
            & (VariableEvent.is_secret == 1)
            & (VariableEvent.action == SET)
        )
        .order_by(VariableEvent.id.desc())
    )
    events = list(query)
    if not events:
        return []
    # peewee's stubs type .tuples() as the model query it was called on.
    stages = dict(
        cast(
            "Iterable[tuple[int, str]]",
            LogicalEnvironment.select(LogicalEnvironment.id, LogicalEnvironment.name).tuples(),
        )
    )
    envs = dict(
        cast(
            "Iterable[tuple[int | None, str]]",
            Environment.select(Environment.id, Environment.name).tuples(),
        )
    )
    return [
        (
            event,
            Scope(
                stages[event.logical_environment_id],
                envs.get(event.environment_id),
                event.deployment_name,
            ),
        )
        for event in events
    ]


def _refuse_a_second_key(box: SecretBox | None, path: Any) -> None:
    """One database, one key: a secret encrypted with a key other than the one its other
    secrets need (a mistyped DEPLOYTRACK_SECRETS_KEY_FILE, another machine's key) would
    leave secrets no single key reveals."""
    in_force = _secrets_in_force()
    # Secrets in force: a CHECK keeps their key_id NOT NULL.
    needed = list(dict.fromkeys(cast(str, event.key_id) for event, _ in in_force))
    if not needed or (box is not None and box.key_id in needed):
        return
    from deploytrack.crypto.secrets import KEY_FILE_ENV, SecretsError

    first, scope = next((e, s) for e, s in in_force if e.key_id == needed[0])
    count = sum(1 for e, _ in in_force if e.key_id == needed[0])
    example = f"{first.name} at {scope}" + (f" and {count - 1} more" if count > 1 else "")
    found = "does not exist" if box is None else f"holds key {box.key_id}"
    if os.environ.get(KEY_FILE_ENV):
        fix = f"check {KEY_FILE_ENV}: set it to the file that holds key {needed[0]}"
    else:
        fix = (
            f"restore {path} from a backup, or set {KEY_FILE_ENV} to the file that holds key "
            f"{needed[0]}"
        )
    raise SecretsError(
        f"the secrets key {path} {found}, but the secrets in this database need key "
        f"{' or '.join(needed)} ({example}): {fix}; secrets are never encrypted under a "
        "second key (if that key is lost for good, unset those secrets first, then set them "
        "again)"
    )


def _encrypting_box(store: Store, scope: Scope, *, create: bool = True) -> SecretBox | None:
    """The key to encrypt a secret at `scope` with: the existing one, or a new one while
    no secret in force needs another key (None when there is none and not `create`). A
    mistyped scope is refused before a key is created."""
    from deploytrack.crypto.secrets import SecretBox, key_path

    box = SecretBox.existing()
    with store.read():
        _Resolved(store, scope)
        _refuse_a_second_key(box, key_path() if box is None else box.path)
    if box is None and create:
        return SecretBox.load(create=True)
    return box


def _same_secret(box: SecretBox, event: VariableEvent, value: str) -> bool:
    """Whether a stored secret already holds `value` (False when it cannot be read with
    this key: setting it again re-encrypts it with the key in use)."""
    from deploytrack.crypto.secrets import SecretsError

    if event.key_id != box.key_id:
        return False
    try:
        # A CHECK keeps ciphertext NOT NULL on a secret's set.
        ciphertext = bytes(cast(bytes, event.ciphertext))
        return box.decrypt(ciphertext, _event_associated(event), event.key_id) == value
    except SecretsError:
        return False


def _secret_stays_secret(
    current: VariableEvent | None, scope: Scope, name: str, secret: bool
) -> None:
    """A secret set again without --secret would be stored in plaintext, for good: the
    history is append-only. So changing it takes --secret, or an explicit unset first."""
    if secret or not _has_value(current) or not current.is_secret:
        return
    raise ServiceError(
        f"{name} is a secret at {scope}: give --secret to change it (its value would "
        f"otherwise be stored in plaintext), or 'deploytrack variable unset {name} "
        f"{scope.options()}' first to make it a plain variable"
    )


def check_set(store: Store, scope: Scope, name: str, *, secret: bool) -> None:
    """The refusals of `set_variable` that do not depend on the value, for the CLI to
    give before it asks for one on a terminal."""
    validate.variable_name(name)
    if secret:
        _encrypting_box(store, scope, create=False)
    with store.read():
        resolved = _Resolved(store, scope)
        _secret_stays_secret(_current_at(resolved.exact, name), scope, name, secret)


def set_variable(
    store: Store, scope: Scope, name: str, value: str, *, secret: bool = False
) -> tuple[VariableView, bool]:
    """Set a variable at exactly `scope`. Returns the view and whether anything changed
    (setting the value it already has writes nothing)."""
    validate.variable_name(name)
    validate.variable_value(value)
    box = _encrypting_box(store, scope) if secret else None
    with store.write() as log:
        resolved = _Resolved(store, scope)
        current = _current_at(resolved.exact, name)
        _secret_stays_secret(current, scope, name, secret)
        if box is not None:
            # Again under the write lock: another process may have set a secret meanwhile.
            _refuse_a_second_key(box, box.path)
        if _has_value(current) and bool(current.is_secret) == secret:
            same = current.value == value if box is None else _same_secret(box, current, value)
            if same:
                return _view(current, scope), False
        fields: dict[str, Any] = {
            "logical_environment": resolved.stage.id,
            "environment": resolved.env_id,
            "deployment_name": scope.deployment_name,
            "name": name,
            "action": SET,
            "is_secret": secret,
            "created_at": _next_time(),
        }
        if box is not None:
            associated = _associated(
                resolved.stage.id, resolved.env_id, scope.deployment_name, name
            )
            fields["ciphertext"] = box.encrypt(value, associated)
            fields["key_id"] = box.key_id
        else:
            fields["value"] = value
            # The salt of the log's commitment to the value (store/eventlog.py).
            fields["value_salt"] = secrets.token_hex(16)
        event = VariableEvent.create(**fields)
        log.log("variable.set")
    return _view(event, scope), True


def _next_time() -> int:
    """Now, but never before the newest change (history stays in order if the clock steps
    back). Inside the write transaction."""
    newest = (
        VariableEvent.select(VariableEvent.created_at)
        .order_by(VariableEvent.id.desc())
        .limit(1)
        .scalar()
    )
    now = timeutil.now_us()
    return now if newest is None else max(now, newest)


def unset_variable(store: Store, scope: Scope, name: str) -> None:
    """Remove a variable from exactly `scope` (its history is kept)."""
    validate.variable_name(name)
    with store.write() as log:
        resolved = _Resolved(store, scope)
        current = _current_at(resolved.exact, name)
        if not _has_value(current):
            raise ServiceError(
                f"{name} is not set at scope {scope}: nothing to unset (see 'deploytrack "
                f"variable list --logical-env {scope.logical_environment}')"
            )
        VariableEvent.create(
            logical_environment=resolved.stage.id,
            environment=resolved.env_id,
            deployment_name=scope.deployment_name,
            name=name,
            action=UNSET,
            is_secret=False,
            created_at=_next_time(),
        )
        log.log("variable.unset")


def _view(event: VariableEvent, scope: Scope, value: str | None = None) -> VariableView:
    # A CHECK keeps value NOT NULL on a plain set; _view is given only events with a value.
    shown = value if value is not None else (MASK if event.is_secret else cast(str, event.value))
    return VariableView(
        name=event.name,
        value=shown,
        secret=bool(event.is_secret),
        scope=scope,
        updated_at=event.created_at,
    )


def _with_scopes(query: Any, stage: str) -> list[tuple[VariableEvent, Scope]]:
    """The events of `query`, oldest first, each with its scope by name. In a read."""
    events = list(query.order_by(VariableEvent.id))
    env_ids = {e.environment_id for e in events if e.environment_id is not None}
    names = {}
    if env_ids:
        names = {
            row.id: row.name
            for row in Environment.select(Environment.id, Environment.name).where(
                Environment.id.in_(sorted(env_ids))
            )
        }
    return [
        (
            event,
            Scope(
                stage,
                names[event.environment_id] if event.environment_id is not None else None,
                event.deployment_name,
            ),
        )
        for event in events
    ]


def _current(resolved: _Resolved) -> list[tuple[VariableEvent, Scope]]:
    """The newest event of each (scope, name) that applies, when it is a set."""
    newest = _newest_per_scope(resolved.applying)
    query = VariableEvent.select().where(VariableEvent.id.in_(newest))
    current = _with_scopes(query, resolved.scope.logical_environment)
    return [(event, scope) for event, scope in current if _has_value(event)]


def list_variables(store: Store, scope: Scope) -> list[VariableView]:
    """The variables set in the logical environment, at every scope that applies to `scope`
    (an --env or --deployment-name narrows to the scopes without one or with the same).
    Secrets masked. Sorted by name, then from the most to the least specific scope."""
    with store.read():
        current = _current(_Resolved(store, scope))
    views = [_view(event, event_scope) for event, event_scope in current]
    return sorted(views, key=lambda v: (v.name, -v.scope.level, str(v.scope)))


def resolve(
    store: Store,
    scope: Scope,
    *,
    require: tuple[str, ...] = (),
    reveal: bool = False,
) -> ResolvedVariables:
    """The effective value of every variable for one deployment, with the scope it came
    from: the most specific scope that sets it. Secrets masked unless `reveal`."""
    if scope.environment is None or scope.deployment_name is None:
        raise ServiceError("resolve needs --logical-env, --env and --deployment-name")
    for name in require:
        validate.variable_name(name)
    with store.read():
        current = _current(_Resolved(store, scope))
    chosen: dict[str, tuple[VariableEvent, Scope]] = {}
    for event, event_scope in current:
        best = chosen.get(event.name)
        if best is None or event_scope.level > best[1].level:
            chosen[event.name] = (event, event_scope)
    missing = sorted(set(require) - set(chosen))
    if missing:
        raise ServiceError(
            f"required variable(s) not set for {scope}: {', '.join(missing)} (set them with "
            "'deploytrack variable set KEY VALUE --logical-env ...')"
        )
    box = None
    views = []
    for name in sorted(chosen):
        event, event_scope = chosen[name]
        value = None
        if event.is_secret and reveal:
            if box is None:
                box = _box(create=False)
            value = _reveal(box, event, event_scope)
        views.append(_view(event, event_scope, value))
    return ResolvedVariables(tuple(views))


def _reveal(box: SecretBox, event: VariableEvent, scope: Scope) -> str:
    from deploytrack.crypto.secrets import SecretsError

    try:
        # A CHECK keeps ciphertext and key_id NOT NULL on a secret's set.
        ciphertext, key_id = bytes(cast(bytes, event.ciphertext)), cast(str, event.key_id)
        return box.decrypt(ciphertext, _event_associated(event), key_id)
    except SecretsError as exc:
        raise SecretsError(f"cannot reveal {event.name} (set at {scope}): {exc}") from None


def history(store: Store, scope: Scope, name: str | None = None) -> list[VariableChange]:
    """Every change in the logical environment at the scopes that apply to `scope` (as
    `list`), oldest first. Secret values never appear: a secret's change reads "secret
    changed"."""
    if name is not None:
        validate.variable_name(name)
    with store.read():
        resolved = _Resolved(store, scope)
        where = resolved.applying
        if name is not None:
            where &= VariableEvent.name == name
        events = _with_scopes(VariableEvent.select().where(where), scope.logical_environment)
    return [_change(event, event_scope) for event, event_scope in events]


def _change(event: VariableEvent, scope: Scope) -> VariableChange:
    if event.action == UNSET:
        change = "unset"
    elif event.action == REDACTED:
        change = f"redacted the value set by entry {event.redacts}"
    elif event.is_secret:
        change = "secret changed"
    elif event.redacted:
        change = "set (value redacted)"
    else:
        change = f"set to {event.value!r}"
    return VariableChange(
        id=event.id,
        name=event.name,
        action=cast("VariableAction", event.action),  # held to these values by a CHECK
        secret=bool(event.is_secret),
        value=None if event.is_secret else event.value,
        change=change,
        scope=scope,
        changed_at=event.created_at,
        redacted=bool(event.redacted),
        redacts=event.redacts,
    )


def _scope_of(event: VariableEvent) -> Scope:
    """The scope of one event, by name."""
    stage = LogicalEnvironment.get_by_id(event.logical_environment_id).name
    env = None
    if event.environment_id is not None:
        env = Environment.get_by_id(event.environment_id).name
    return Scope(stage, env, event.deployment_name)


def redact(store: Store, event_id: int) -> Redaction:
    """Remove for good the value of a plain history entry set by mistake.

    The entry keeps its place in the history, without its value; a 'redacted' line
    records when. The write zeroes the space the value leaves (secure_delete), then a
    checkpoint copies the new page into the database file and truncates the WAL, so the
    old bytes are in neither. If the entry was the current value at its scope, the
    variable has no value there any more, as after an unset (less specific scopes apply
    again): an older value is not brought back behind the user's back.
    """
    from deploytrack.store import scrub

    with scrub.scrubbing_write(store) as log:
        # Past SQLite's integer range a number is no id (and would overflow the driver).
        event = (
            None if event_id > _MAX_ID else VariableEvent.get_or_none(VariableEvent.id == event_id)
        )
        if event is None:
            raise ServiceError(
                f"there is no variable history entry {event_id} (the ids are in "
                "'deploytrack variable history --logical-env ... -o json')"
            )
        scope = _scope_of(event)
        what = f"entry {event_id} ({event.name} at {scope})"
        if event.action == REDACTED:
            raise ServiceError(f"{what} is itself a redaction: it holds no value")
        if event.action == UNSET:
            raise ServiceError(f"{what} is an unset: it holds no value to redact")
        if event.is_secret:
            raise ServiceError(
                f"{what} is a secret: it is stored only encrypted, there is no plaintext to "
                "redact (to replace it, set it again with --secret)"
            )
        if event.redacted:
            raise ServiceError(f"{what} was already redacted: its value is gone")
        current = _current_at(_Resolved(store, scope).exact, event.name)
        line = VariableEvent.create(
            logical_environment=event.logical_environment_id,
            environment=event.environment_id,
            deployment_name=event.deployment_name,
            name=event.name,
            action=REDACTED,
            is_secret=False,
            redacts=event.id,
            created_at=_next_time(),
        )
        log.log("variable.redacted")
        # The schema blanked the entry when the line was inserted: read what it holds now.
        event = VariableEvent.get_by_id(event.id)
    scrubbed = scrub.checkpoint_truncate(store)
    return Redaction(
        change=_change(line, scope),
        redacted=_change(event, scope),
        was_current=current is not None and current.id == event.id,
        scrubbed=scrubbed,
    )
