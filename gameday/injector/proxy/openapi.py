"""The admin API's OpenAPI 3.1 description, its schemas taken from the mode's rule models."""

from __future__ import annotations

import copy
from typing import Any

from gameday import __version__
from gameday.injector.rules import HTTP_RULES, RuleFormat

_REF = "#/components/schemas/{model}"


def _schemas(max_ttl: float, rules: RuleFormat[Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    # Named RuleInput and Rule whatever the mode's model classes are called.
    for name, model, mode in (("RuleInput", rules.input, "validation"),
                              ("Rule", rules.rule, "serialization")):
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        schemas.update(schema.pop("$defs", {}))
        schema["title"] = name
        schemas[name] = schema
    for name, schema in schemas.items():
        kind = schema.get("properties", {}).get("kind", {}).get("const")
        if name.endswith("Fault") and kind in rules.kinds:
            # The union is told apart by ``kind``: on input it may not be left out.
            schema["required"] = sorted({*schema.get("required", []), "kind"})
    for bounded in ("ttl", "lease"):
        field = schemas["RuleInput"]["properties"][bounded]
        for option in field.get("anyOf", [field]):
            if option.get("type") == "number":
                option["maximum"] = max_ttl
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "field": {"type": "string", "description": "dotted location of the first problem"},
            "problems": {"type": "array", "items": {
                "type": "object", "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
        },
    }
    schemas.update({
        "Error": error,
        "RuleList": {"type": "object", "required": ["rules"], "additionalProperties": False,
                     "properties": {"rules": {"type": "array",
                                              "items": {"$ref": _REF.format(model="Rule")}}}},
        "RuleSet": {"type": "object", "required": ["rules"], "additionalProperties": False,
                    "properties": {"rules": {"type": "array",
                                             "items": {"$ref": _REF.format(model="RuleInput")}}}},
        "LeaseRenewal": {
            "type": "object", "required": ["run"], "additionalProperties": False,
            "properties": {"run": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                   "maxLength": 63},
                           "ids": {"type": "array", "maxItems": 1024,
                                   "items": {"type": "string", "maxLength": 64}}}},
        "Renewed": {
            "type": "object", "required": ["renewed"],
            "properties": {
                "renewed": {"type": "object", "additionalProperties": {"type": "number"},
                            "description": "new lease deadline (epoch seconds) by rule id"},
                "gone": {"type": "array", "items": {
                    "type": "object", "required": ["id", "reason"],
                    "properties": {"id": {"type": "string"}, "reason": {"type": "string"}}}},
                "error": {"type": "string"}}},
        "Removed": {"type": "object", "required": ["removed"],
                    "properties": {"removed": {"type": "integer", "minimum": 0}}},
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string", "enum": ["ok"]},
                                  "mode": {"type": "string", "enum": ["http", "tcp"]},
                                  "rules": {"type": "integer"}, "upstream": {"type": "string"},
                                  "target": {"type": "string"}, "max_ttl": {"type": "number"},
                                  "version": {"type": "string"},
                                  "uptime_s": {"type": "number"}}},
    })
    return schemas


def _json_body(model: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}


_ERRORS = {
    "400": _json_body("Error", "invalid input; nothing changed"),
    "401": _json_body("Error", "missing or wrong bearer token"),
}
_RUN = {"name": "run", "in": "query", "schema": {"type": "string"},
        "description": "only rules with this run label"}


def openapi_document(max_ttl: float, rules: RuleFormat[Any] = HTTP_RULES) -> dict[str, Any]:
    """The OpenAPI document of a proxy taking ``rules``; ``max_ttl`` bounds the ``ttl``."""
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    paths: dict[str, Any] = {
        "/health": {"get": {"summary": "Liveness", "operationId": "health", "security": [],
                            "responses": {"200": _json_body("Health", "the proxy is up")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                             "security": [],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {
                                                       "schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                  "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": {"application/json": {
                                                            "schema": {"type": "object"}}}}}}},
        "/rules": {
            "get": {"summary": "List rules", "operationId": "listRules", "security": secured,
                    "parameters": [_RUN],
                    "responses": {"200": _json_body("RuleList", "the active rules"),
                                  "401": _ERRORS["401"]}},
            "put": {"summary": "Replace every rule at once (all valid or none applied)",
                    "operationId": "replaceRules", "security": secured,
                    "requestBody": {"required": True, **_json_body("RuleSet", "the new set")},
                    "responses": {"200": _json_body("RuleList", "the rules now active"),
                                  **_ERRORS}},
            "post": {"summary": "Add one rule", "operationId": "addRule", "security": secured,
                     "requestBody": {"required": True, **_json_body("RuleInput", "the rule")},
                     "responses": {"201": _json_body("Rule", "the stored rule"), **_ERRORS,
                                   "409": _json_body("Error", "a rule with this id exists")}},
            "delete": {"summary": "Remove every rule of one run", "operationId": "removeRun",
                       "security": secured,
                       "parameters": [{**_RUN, "required": True,
                                       "schema": {"type": "string", "minLength": 1}}],
                       "responses": {"200": _json_body("Removed", "how many were removed"),
                                     **_ERRORS}},
        },
        "/leases": {
            "post": {"summary": "Renew the leases of one run's rules (one call for all)",
                     "operationId": "renewLeases", "security": secured,
                     "requestBody": {"required": True,
                                     **_json_body("LeaseRenewal", "the run, and its rule ids")},
                     "responses": {"200": _json_body("Renewed", "every listed rule renewed"),
                                   **_ERRORS,
                                   "410": _json_body("Renewed", "a listed rule is gone (its "
                                                     "lease lapsed, or it was removed); it "
                                                     "does not come back")}},
        },
        "/rules/{rule_id}": {
            "delete": {"summary": "Remove one rule", "operationId": "removeRule",
                       "security": secured,
                       "parameters": [{"name": "rule_id", "in": "path", "required": True,
                                       "schema": {"type": "string"}}],
                       "responses": {"200": _json_body("Removed", "removed"),
                                     "401": _ERRORS["401"],
                                     "404": _json_body("Error", "no such rule")}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"gameday proxy admin API ({rules.protocol} mode)",
                 "version": __version__,
                 "description": f"Fault rules of one gameday sidecar proxy in {rules.protocol} "
                                "mode. Rules expire by themselves at expires_at, and a rule "
                                "with a lease also once its run stopped renewing it; ttl and "
                                "lease may not exceed max_ttl."},
        "paths": copy.deepcopy(paths),
        "components": {
            "schemas": _schemas(max_ttl, rules),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
