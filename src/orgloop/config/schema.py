"""The JSON Schema (draft 2020-12) of project files, generated from the models the loader validates with.

Without a kind: one schema for any project file, a ``oneOf`` over every kind discriminated by ``kind``
(for editors: associate it with ``orgloop.yaml``, ``routes/*.yaml`` and so on). With a kind: that
kind's schema alone.
"""
from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

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
    _admit_placeholders(body)
    return {"$schema": DRAFT, "title": title, "description": description, **body}


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
