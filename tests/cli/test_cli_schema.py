"""``orgloop schema``: a JSON Schema of every project file kind, from the loader's own models."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from orgloop.cli import main
from orgloop.config.models import GROUP_MODELS
from orgloop.config.yamlfile import load_yaml
from support.projects import STARTER


def schema(*args):
    result = CliRunner().invoke(main, ["schema", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_full_schema_is_a_oneof_discriminated_by_kind_over_every_kind():
    doc = schema()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["discriminator"]["propertyName"] == "kind"
    assert set(doc["discriminator"]["mapping"]) == set(GROUP_MODELS)
    refs = {entry["$ref"] for entry in doc["oneOf"]}
    assert refs == set(doc["discriminator"]["mapping"].values())
    for ref in refs:
        definition = doc["$defs"][ref.rsplit("/", 1)[1]]
        assert definition["additionalProperties"] is False
        assert definition["properties"]["apiVersion"]["const"] == "orgloop/v1alpha1"


def test_one_kind_and_the_details_editors_need():
    routes = schema("--kind", "RouteGroup")
    assert routes["properties"]["kind"]["const"] == "RouteGroup" and "oneOf" not in routes
    route = routes["$defs"]["Route"]
    assert "with" in route["properties"] and "with_" not in route["properties"]
    assert set(route["required"]) == {"name", "when", "then"}
    delivery = routes["$defs"]["Delivery"]["properties"]
    rate = re.compile(delivery["max_rate"]["anyOf"][0]["pattern"])
    delay = re.compile(routes["$defs"]["Retry"]["properties"]["initial_delay"]["pattern"])
    # JSON Schema patterns search anywhere; a ${VAR} placeholder is admitted since files are checked as written
    assert rate.search("100/s") and rate.search("10/min") and not rate.search("100 per second")
    assert delay.search("500ms") and not delay.search("5 min") and not delay.search("1.5s")
    assert rate.search("${RATE}") and delay.search("${DELAY:-1s}")


def test_unknown_kind_is_a_usage_error():
    result = CliRunner().invoke(main, ["schema", "--kind", "Nope"])
    assert result.exit_code == 64


def test_output_file(tmp_path):
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(main, ["schema", "--kind", "Workspace", "--out", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["properties"]["kind"]["const"] == "Workspace"


def test_the_starter_project_validates_against_the_schema():
    import jsonschema   # a test dependency: the published schema must accept the starter project

    validator = jsonschema.Draft202012Validator(schema())
    files = sorted(STARTER.rglob("*.yaml"))
    assert len(files) == 6
    for path in files:
        validator.validate(load_yaml(path).data)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"apiVersion": "orgloop/v1alpha1", "kind": "RouteGroup", "routes": [{"name": "x"}]})
