"""JSON Schema for the config file and for rule files, generated from the pydantic models and the
rule-kind registry (as Cloud Custodian's ``schema.generate`` walks its registries), so editors can
complete and check both and the schema can never drift from the code.

* :func:`config_schema`: the config file (``costguard.yaml``);
* :func:`kind_schema`: one rule of one kind (the common keys plus the kind's own parameters);
* :func:`rules_schema`: a rule file (a list of rules of any kind, told apart by ``kind``).
"""

from __future__ import annotations

import inspect
from typing import Any

from costguard.config import Config
from costguard.rules import RULES
from costguard.rules.loader import CommonKeys

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    s = Config.model_json_schema(by_alias=True)
    return {"$schema": DRAFT, "title": "costguard config", **{k: v for k, v in s.items() if k != "title"}}


def _retarget(node: Any, prefix: str) -> Any:
    """Rename every ``#/$defs/X`` reference to ``#/$defs/<prefix>X`` (defs of several kinds share one root)."""
    if isinstance(node, dict):
        return {k: (f"#/$defs/{prefix}{v[len('#/$defs/'):]}" if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                    else _retarget(v, prefix)) for k, v in node.items()}
    if isinstance(node, list):
        return [_retarget(x, prefix) for x in node]
    return node


def _kind(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the rule object schema, its $defs) with definitions prefixed by ``<kind>.``."""
    cls = RULES.get(kind)
    common = CommonKeys.model_json_schema()
    params = _retarget(cls.Params.model_json_schema(), f"{kind}.")
    props: dict[str, Any] = {**common["properties"], **params.get("properties", {})}
    props["kind"] = {"const": kind, "description": f"rule kind {kind!r} (finding kind {cls.finding_kind!r})"}
    doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    obj = {
        "title": f"{kind} rule",
        "description": doc,
        "type": "object",
        "properties": props,
        "required": sorted(set(common.get("required", [])) | set(params.get("required", []))),
        "additionalProperties": False,
    }
    defs = {f"{kind}.{k}": v for k, v in params.get("$defs", {}).items()}
    return obj, defs


def kind_schema(kind: str) -> dict[str, Any]:
    obj, defs = _kind(kind)
    return {"$schema": DRAFT, **obj, **({"$defs": defs} if defs else {})}


def rules_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    variants = []
    for kind in RULES.names():
        obj, d = _kind(kind)
        defs.update(d)
        defs[f"rule.{kind}"] = obj
        variants.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                         "then": {"$ref": f"#/$defs/rule.{kind}"}})
    return {
        "$schema": DRAFT,
        "title": "costguard rule file",
        "description": "A YAML list of rules; each rule's keys are checked by the schema of its kind.",
        "type": "array",
        "items": {"type": "object", "required": ["id", "kind", "severity"],
                  "properties": {"kind": {"enum": RULES.names()}}, "allOf": variants},
        "$defs": defs,
    }
