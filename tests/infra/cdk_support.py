"""Reading synthesized CloudFormation: resources by type, and ARNs built with Fn::Join as plain text."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template


def resources_of(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of ``kind``."""
    found: dict[str, dict[str, Any]] = template.find_resources(kind)
    return found


def only_resource(template: Template, kind: str) -> dict[str, Any]:
    """The properties of the single resource of ``kind``; fails when there are none or several."""
    found = resources_of(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    properties: dict[str, Any] = next(iter(found.values()))["Properties"]
    return properties


def as_text(value: Any) -> str:
    """A CloudFormation value as text: literal parts of Fn::Join kept, every other token shown as ``<token>``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(as_text(part) for part in parts)
    return "<token>"


def as_list(value: Any) -> list[Any]:
    """IAM allows a string or a list wherever it allows a list."""
    return value if isinstance(value, list) else [value]


def policy_statements_of_role(template: Template, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the AWS::IAM::Policy resources attached to the role."""
    statements: list[dict[str, Any]] = []
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        roles = policy["Properties"].get("Roles", [])
        if {"Ref": role_logical_id} in roles:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements
