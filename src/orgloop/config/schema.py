"""The JSON Schema (draft 2020-12) of project files, generated from the models the loader validates with.

Without a kind: one schema for any project file, a ``oneOf`` over every kind discriminated by ``kind``
(for editors: associate it with ``orgloop.yaml``, ``routes/*.yaml`` and so on). With a kind: that
kind's schema alone.

The ``config`` of a source, actor, transform or logger, and ``runtime.bus_options``, are checked against
the config model of the plugin they name, for every installed plugin that declares one: the item's
schema gets one ``if`` (the plugin's names, bare or as an OrgLoop package) / ``then`` (its model) per
plugin, and the models sit in ``$defs`` as ``plugin.<kind>.<name>``.
"""
from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter

from orgloop import plugins
from orgloop.config.models import API_VERSION, GROUP_MODELS

__all__ = ["DRAFT", "KINDS", "json_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
KINDS = tuple(GROUP_MODELS)


def json_schema(kind: str | None = None) -> dict[str, Any]:
    """The schema of one file ``kind`` (see :data:`KINDS`), or of any project file when None."""
    if kind is None:
        models = tuple(GROUP_MODELS.values())
        any_file: Any = Annotated[Union[models], Field(discriminator="kind")]  # built at run time
        adapter: TypeAdapter[Any] = TypeAdapter(any_file)
        body = adapter.json_schema()
        title, description = "orgloop project file", f"Any {API_VERSION} project file, by its kind."
    else:
        if kind not in GROUP_MODELS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        body = GROUP_MODELS[kind].model_json_schema()
        title, description = f"orgloop {kind}", body.pop("description", f"An {API_VERSION} {kind} file.")
    body.pop("title", None)
    _add_plugin_models(body)
    _admit_placeholders(body)
    return {"$schema": DRAFT, "title": title, "description": description, **body}


# item definition in $defs -> (plugin kind, field naming the plugin, package prefix, field holding the config)
_PLUGIN_ITEMS = {"Source": ("sources", "connector", "connector-", "config"),
                 "Actor": ("actors", "connector", "connector-", "config"),
                 "Transform": ("transforms", "package", "transform-", "config"),
                 "Logger": ("loggers", "type", "logger-", "config"),
                 "RuntimeSettings": ("buses", "bus", "bus-", "bus_options")}


def _plugin_ref(defs: dict[str, Any], kind: str, name: str, model: type[BaseModel]) -> str:
    """Put ``model``'s schema (and the models it nests, under the same prefix) into ``defs``."""
    prefix = f"plugin.{kind}.{name}"
    schema = TypeAdapter(model).json_schema(ref_template=f"#/$defs/{prefix}.{{model}}")
    for nested, definition in schema.pop("$defs", {}).items():
        defs[f"{prefix}.{nested}"] = definition
    defs[prefix] = schema
    return f"#/$defs/{prefix}"


def _add_plugin_models(body: dict[str, Any]) -> None:
    defs = body.setdefault("$defs", {})
    for item, (kind, field, package, config) in _PLUGIN_ITEMS.items():
        if item not in defs:
            continue
        conditions = []
        default = defs[item].get("properties", {}).get(field, {}).get("default")
        for name in plugins.available(kind):
            try:
                model = plugins.config_model(plugins.load(kind, name))
            except Exception:  # a plugin that cannot be imported is left out of the schema, not fatal
                continue
            if model is None:
                continue
            ref = _plugin_ref(defs, kind, name, model)
            names = [name, package + name, "@orgloop/" + package + name]
            when: dict[str, Any] = {"properties": {field: {"enum": names}}, "required": [field]}
            if name == default:        # the plugin used when the field is left out
                when = {"properties": {field: {"enum": names}}}
            if kind == "transforms" and name == "script":
                when = {"properties": {"type": {"const": "script"}}, "required": ["type"]}
            conditions.append({"if": when, "then": {"properties": {config: {"$ref": ref}}}})
        if conditions:
            defs[item]["allOf"] = conditions
    if not defs:
        body.pop("$defs")


def _admit_placeholders(node: Any) -> None:
    """Let every patterned string also hold a ``${VAR}`` placeholder: the schema checks files as written,
    before the loader substitutes variables (a name such as ``${PROJECT_NAME:-starter}`` is valid)."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            node["pattern"] = f"(?:{pattern})|\\$\\{{"
        for value in node.values():
            _admit_placeholders(value)
    elif isinstance(node, list):
        for value in node:
            _admit_placeholders(value)
