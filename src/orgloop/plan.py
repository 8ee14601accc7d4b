"""``orgloop plan``: the difference between the desired state (the project files of a workspace) and the
state that workspace last applied (recorded in its data directory, or reported by its running runtime).

A *state* is ``{kind: {name: item}}`` for the five kinds (sources, actors, routes, transforms, loggers);
an item is its definition normalised through its schema model (defaults filled in, so writing a default
explicitly is not a change), plus a digest of its prompt file or script so that editing one is a change.
Secrets never enter a state in clear: the values of fields a plugin's config model types as
``SecretStr`` (:func:`orgloop.plugins.mask_secrets`), and strings that contain the value of a
secret-looking variable (``GITHUB_TOKEN``, ``API_KEY``...), are replaced by a digest marker
(``***sha256:…``) that still changes when the secret does. A state is plain JSON.

A :class:`Plan` lists every item as added, changed, removed or unchanged, with field-level changes
(``FieldChange.path`` is a key tuple; :meth:`FieldChange.dotted` its display form), and
``plan.apply(current) == desired`` holds for every pair of states.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from orgloop import plugins
from orgloop.atomicfile import atomic_write

__all__ = ["KINDS", "SINGULAR", "ACTIONS", "ABSENT", "MASK", "State", "Action", "FieldChange", "ItemChange",
           "Plan", "compute_plan", "desired_state", "empty_state", "Masker", "looks_secret", "read_applied",
           "write_applied", "atomic_write_json", "APPLIED_STATE_FILE"]

KINDS = ("sources", "actors", "routes", "transforms", "loggers")
SINGULAR = {"sources": "source", "actors": "actor", "routes": "route", "transforms": "transform",
            "loggers": "logger"}
State = dict[str, dict[str, dict[str, Any]]]
Action = Literal["added", "changed", "removed", "unchanged"]
ACTIONS: tuple[Action, ...] = ("added", "changed", "removed", "unchanged")
APPLIED_STATE_FILE = "applied-state.json"
STATE_VERSION = 1

_SECRET_WORDS = ("token", "secret", "password", "key", "credential")
SECRET_PREFIX = "***sha256:"
MASK = "***"


class _Absent:
    """The value of a field that does not exist on one side of a change."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


def looks_secret(name: str) -> bool:
    """True for a variable name containing token, secret, password, key or credential."""
    lowered = name.lower()
    return any(w in lowered for w in _SECRET_WORDS)


def empty_state() -> State:
    return {kind: {} for kind in KINDS}


# --------------------------------------------------------------------------- secrets
class Masker:
    """Replaces secrets by digest markers (for states) and markers by ``***`` (for display).

    :meth:`hide` masks strings that contain a secret variable's value; :func:`desired_state` masks the
    fields a plugin's config model marks as secret first. Key names alone never make a value secret (a
    dedup ``key`` list is not a key)."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another one is recognised whole; very short values only
        # match a whole string (masking every "a" in every string would make output unreadable).
        values = sorted({v for v in secret_values if v}, key=len, reverse=True)
        self._whole = set(values)
        self._inner = [v for v in values if len(v) >= 4]
        self._in_json = [json.dumps(v, ensure_ascii=False)[1:-1] for v in values]   # as they appear in JSON

    @classmethod
    def for_variables(cls, variables: Mapping[str, str]) -> "Masker":
        """Secrets are the values of variables whose names look secret (``GITHUB_TOKEN``, ``API_KEY``)."""
        return cls(v for k, v in variables.items() if looks_secret(k))

    @staticmethod
    def marker(value: Any) -> str:
        """The digest marker of ``value`` (already a marker: itself)."""
        if isinstance(value, str) and value.startswith(SECRET_PREFIX):
            return value
        text = json.dumps(value, sort_keys=True, default=str)
        return SECRET_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]

    def _contains_secret(self, text: str) -> bool:
        return text in self._whole or any(v in text for v in self._inner)

    def hide(self, value: Any) -> Any:
        """``value`` with every string that contains a secret variable's value replaced by its digest
        marker (a copy, or ``value`` itself when it holds nothing to hide: one scan of its JSON text
        tells, which is much cheaper than a walk)."""
        if not self._in_json:
            return value
        text = json.dumps(value, ensure_ascii=False, default=str)
        if not any(v in text for v in self._in_json):
            return value
        return self._hide(value)

    def _hide(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._hide(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._hide(v) for v in value]
        if isinstance(value, str) and not value.startswith(SECRET_PREFIX) and self._contains_secret(value):
            return self.marker(value)
        return value

    @staticmethod
    def display(value: Any) -> Any:
        """``value`` with digest markers shown as ``***`` (what humans and ``--json`` see)."""
        if isinstance(value, dict):
            return {k: Masker.display(v) for k, v in value.items()}
        if isinstance(value, list):
            return [Masker.display(v) for v in value]
        if isinstance(value, str) and value.startswith(SECRET_PREFIX):
            return MASK
        return value


# --------------------------------------------------------------------------- desired state
def desired_state(project: Any) -> State:
    """The normalised state of a loaded project (see the module docstring)."""
    masker = Masker.for_variables(project.variables)
    default_poll = project.settings.defaults.poll_interval if project.settings else "5m"
    out = empty_state()
    digests: dict[Path, str] = {}                 # many routes share one prompt file
    prompts: dict[tuple[Path, str], Path | None] = {}
    models: dict[tuple[str, str], Any] = {}
    for kind in KINDS:
        ident = "id" if kind in ("sources", "actors") else "name"
        items = out[kind]
        for name, d in project.definitions[kind].items():
            entry = d.model.model_dump(mode="json", by_alias=True, exclude_none=True)
            entry.pop(ident, None)
            if kind == "sources":
                entry.setdefault("poll", {"interval": default_poll})
            if kind == "routes" and (prompt := _prompt_path(project, d, prompts)) is not None:
                entry["prompt_sha256"] = _digest(prompt, digests)
            if kind == "transforms" and d.model.type == "script":
                script = (d.file.parent / d.model.script).resolve()
                if script.is_file():
                    entry["script_sha256"] = _digest(script, digests)
            if isinstance(entry.get("config"), dict) and kind != "routes":
                entry["config"] = plugins.mask_secrets(_config_model(kind, d.model, models), entry["config"],
                                                       masker.marker)
            items[name] = masker.hide(entry)
    return out


def _config_model(kind: str, item: Any, cache: dict[tuple[str, str], Any]) -> Any:
    """The config model of the plugin behind one source, actor, transform or logger (None: unknown)."""
    if kind == "transforms":
        name = "script" if item.type == "script" else item.package
    else:
        name = item.type if kind == "loggers" else item.connector
    key = (kind, plugins.plugin_name(name))
    if key not in cache:
        try:
            cache[key] = plugins.config_model(plugins.load(*key))
        except (plugins.PluginError, ImportError):
            cache[key] = None
    return cache[key]


def _prompt_path(project: Any, route: Any, cache: dict[tuple[Path, str], Path | None]) -> Path | None:
    """``project.prompt_path(route)``, once per (route file directory, prompt file)."""
    w = route.model.with_
    if w is None or not w.prompt_file:
        return None
    key = (route.file.parent, w.prompt_file)
    if key not in cache:
        cache[key] = project.prompt_path(route)
    return cache[key]


def _digest(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        cache[path] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return cache[path]


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class FieldChange:
    """One leaf that differs; ``old``/``new`` is :data:`ABSENT` when the key exists on one side only.
    Dicts are compared key by key; lists and scalars are compared whole."""

    path: tuple[str, ...]
    old: Any
    new: Any

    def dotted(self) -> str:
        return ".".join(self.path)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.dotted()}
        if self.old is not ABSENT:
            out["old"] = Masker.display(self.old)
        if self.new is not ABSENT:
            out["new"] = Masker.display(self.new)
        return out


@dataclass(frozen=True)
class ItemChange:
    kind: str
    name: str
    action: Action
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    fields: tuple[FieldChange, ...] = ()

    @property
    def label(self) -> str:
        return f"{SINGULAR[self.kind]} {self.name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": SINGULAR[self.kind], "name": self.name, "action": self.action}
        if self.action == "changed":
            out["changes"] = [f.to_json() for f in self.fields]
        elif self.action == "added":
            out["new"] = Masker.display(self.new)
        elif self.action == "removed":
            out["old"] = Masker.display(self.old)
        return out


def _field_changes(old: Any, new: Any, prefix: tuple[str, ...], out: list[FieldChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            a, b = old.get(key, ABSENT), new.get(key, ABSENT)
            if a is ABSENT or b is ABSENT:
                if a is not b:
                    out.append(FieldChange(prefix + (key,), a, b))
            elif a != b or not _same_types(a, b):
                _field_changes(a, b, prefix + (key,), out)
        return
    out.append(FieldChange(prefix, old, new))


@dataclass
class Plan:
    """Every item of both states, in kind order then name order, with what happens to it."""

    items: list[ItemChange]
    workspace: str = "default"

    @property
    def changes(self) -> list[ItemChange]:
        return [i for i in self.items if i.action != "unchanged"]

    @property
    def has_changes(self) -> bool:
        return any(i.action != "unchanged" for i in self.items)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {action: n}}`` with every kind and action present."""
        out: dict[str, dict[str, int]] = {kind: {a: 0 for a in ACTIONS} for kind in KINDS}
        for i in self.items:
            out[i.kind][i.action] += 1
        return out

    def of(self, kind: str, *actions: Action) -> list[ItemChange]:
        return [i for i in self.items if i.kind == kind and i.action in actions]

    def summary(self) -> str:
        """``Plan: 3 sources added, 1 route changed, 2 transforms removed.`` (zero counts left out)."""
        if not self.has_changes:
            return f'No changes. The workspace "{self.workspace}" matches the project.'
        parts = []
        for kind, by_action in self.counts().items():
            for action in ("added", "changed", "removed"):
                n = by_action[action]
                if n:
                    parts.append(f"{n} {kind if n != 1 else SINGULAR[kind]} {action}")
        return "Plan: " + ", ".join(parts) + "."

    def apply(self, state: State) -> State:
        """``state`` with this plan's changes made (field by field for changed items)."""
        out = copy.deepcopy(state)
        for kind in KINDS:
            out.setdefault(kind, {})
        for i in self.items:
            table = out[i.kind]
            if i.action == "added":
                table[i.name] = copy.deepcopy(i.new or {})
            elif i.action == "removed":
                table.pop(i.name, None)
            elif i.action == "changed":
                item = table[i.name]
                for f in i.fields:
                    item = _set_path(item, f.path, f.new)
                table[i.name] = item
        return out

    def to_json(self, include_unchanged: bool = False) -> dict[str, Any]:
        counts = self.counts()
        return {"workspace": self.workspace, "changes": self.has_changes, "summary": self.summary(),
                "counts": {k: {a: v[a] for a in ("added", "changed", "removed", "unchanged")}
                           for k, v in counts.items()},
                "items": [i.to_json() for i in self.items if include_unchanged or i.action != "unchanged"]}


def _set_path(item: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return copy.deepcopy(value)
    node = item if isinstance(item, dict) else {}
    head, rest = path[0], path[1:]
    if not rest and value is ABSENT:
        node.pop(head, None)
    else:
        node[head] = _set_path(node.get(head), rest, value)
    return node


def compute_plan(current: State, desired: State, workspace: str = "default") -> Plan:
    """The plan that turns ``current`` into ``desired``: linear in the number of items (one dict lookup
    each, field diffs only for items whose values differ)."""
    items: list[ItemChange] = []
    for kind in KINDS:
        old_items, new_items = current.get(kind, {}), desired.get(kind, {})
        for name in sorted(old_items.keys() | new_items.keys()):
            old, new = old_items.get(name), new_items.get(name)
            if old is None:
                items.append(ItemChange(kind, name, "added", None, new))
            elif new is None:
                items.append(ItemChange(kind, name, "removed", old, None))
            elif old == new and _same_types(old, new):
                items.append(ItemChange(kind, name, "unchanged", old, new))
            else:
                fields: list[FieldChange] = []
                _field_changes(old, new, (), fields)
                items.append(ItemChange(kind, name, "changed", old, new, tuple(fields)))
    return Plan(items, workspace)


def _same_types(a: Any, b: Any) -> bool:
    """For ``a == b``: also the same types throughout (``1 == 1.0 == True`` in Python, but a state change
    from 1 to true is still a change). Plain loops: this runs on every unchanged item."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        for k, v in a.items():
            if not _same_types(v, b[k]):
                return False
    elif kind is list:
        for x, y in zip(a, b):
            if not _same_types(x, y):
                return False
    return True


# --------------------------------------------------------------------------- the applied-state record
def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON so that a crash leaves the old file or the new one (see :mod:`orgloop.atomicfile`)."""
    atomic_write(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode(), 0o600)


def write_applied(data_dir: Path, state: State, *, project: str, workspace: str) -> None:
    """Record ``state`` as what this workspace now runs."""
    atomic_write_json(Path(data_dir) / APPLIED_STATE_FILE, {
        "version": STATE_VERSION, "project": project, "workspace": workspace, "applied_at": time.time(),
        "state": state})


def read_applied(data_dir: Path) -> dict[str, Any] | None:
    """The record :func:`write_applied` left (``record["state"]`` is the state), or None if there is none.
    Raises ``ValueError`` for a damaged or foreign file rather than planning against a wrong base."""
    path = Path(data_dir) / APPLIED_STATE_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the applied state {path}: {exc}") from None
    if not isinstance(record, dict) or record.get("version") != STATE_VERSION or not isinstance(
            record.get("state"), dict):
        raise ValueError(f"{path} is not an orgloop applied-state file of version {STATE_VERSION}")
    return record
