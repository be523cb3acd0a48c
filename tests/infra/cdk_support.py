"""Infra test support: skip without the CDK toolchain; read synthesized CloudFormation as plain values."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

# A certificate in AWS's documentation account: the tests synthesize the HTTPS deployment, the default one.
TEST_CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
# A commit id, as the pipeline tags images (make infra passes git's HEAD).
TEST_IMAGE_TAG = "0123456789abcdef0123456789abcdef01234567"
TEST_CONTEXT: dict[str, Any] = {"certificate_arn": TEST_CERTIFICATE_ARN, "image_tag": TEST_IMAGE_TAG}


SETTINGS_SOURCE = Path(__file__).resolve().parents[2] / "app" / "settings.py"
SETTINGS_PREFIX = "DEEPCANVAS_"
TELEMETRY_SOURCE = SETTINGS_SOURCE.with_name("telemetry.py")
ROUTERS_SOURCE = SETTINGS_SOURCE.with_name("routers")


def service_settings() -> dict[str, Any]:
    """The service's settings (``app.settings.Settings``) by field name, each with its default where it is a literal
    (``Ellipsis`` otherwise), read from the source: the infra workflow installs none of the service's packages."""
    tree = ast.parse(SETTINGS_SOURCE.read_text())
    (settings,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"]
    fields: dict[str, Any] = {}
    for node in settings.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if node.target.id == "model_config":
            continue
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Field":
            value = value.args[0] if value.args else None
        try:
            fields[node.target.id] = ast.literal_eval(value) if value is not None else Ellipsis
        except ValueError:
            fields[node.target.id] = Ellipsis
    return fields


def module_constants(source: Path) -> dict[str, Any]:
    """The top-level names of a service module bound to a literal (``NAME = ...``), read from its source."""
    constants: dict[str, Any] = {}
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        try:
            constants[name] = ast.literal_eval(value)
        except ValueError:
            continue
    return constants


def emf_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Metric name -> (unit, dimension names), as ``app.telemetry.EmfEmitter`` writes them: each literal
    ``<logger>.put_metric(name, value, unit)`` with the keys of the same logger's ``set_dimensions({...})``."""
    dimensions: dict[str, tuple[str, ...]] = {}
    metrics: dict[str, tuple[str, str]] = {}
    for node in ast.walk(ast.parse(TELEMETRY_SOURCE.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if not isinstance(node.func.value, ast.Name):
            continue
        logger = node.func.value.id
        if node.func.attr == "set_dimensions" and isinstance(node.args[0], ast.Dict):
            dimensions[logger] = tuple(ast.literal_eval(key) for key in node.args[0].keys if key is not None)
        elif node.func.attr == "put_metric":
            name, _, unit = node.args
            metrics[ast.literal_eval(name)] = (ast.literal_eval(unit), logger)
    return {name: (unit, dimensions[logger]) for name, (unit, logger) in metrics.items()}


def service_routes(verb: str) -> set[str]:
    """The templates of the service's ``verb`` routes (``APIRouter(prefix=...)`` and ``@router.<verb>(path)`` in
    app/routers), which are the ``route`` label its metrics carry (app.telemetry.route_label)."""
    routes: set[str] = set()
    for source in sorted(ROUTERS_SOURCE.glob("*.py")):
        tree = ast.parse(source.read_text())
        prefix = ""
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "APIRouter":
                prefix = next((ast.literal_eval(k.value) for k in node.keywords if k.arg == "prefix"), "")
        for node in ast.walk(tree):
            if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == verb
                    and decorator.args
                ):
                    routes.add(prefix + ast.literal_eval(decorator.args[0]))
    return routes


def require_cdk() -> None:
    """Skip (a whole module when called at its top) unless node and aws-cdk-lib are both there.

    node is checked first: importing aws_cdk starts jsii's node kernel, and fails without one.
    """
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: aws-cdk-lib runs on jsii, which needs node", allow_module_level=True)
    pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (the infra extra)")


def resources_of(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of ``kind``."""
    return {logical_id: dict(resource) for logical_id, resource in template.find_resources(kind).items()}


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


def exported_value(template: Template, import_value: Any) -> Any:
    """What an ``Fn::ImportValue`` of another stack's export resolves to in that stack's ``template``."""
    name = import_value["Fn::ImportValue"]
    for output in template.to_json().get("Outputs", {}).values():
        if output.get("Export", {}).get("Name") == name:
            return output["Value"]
    raise AssertionError(f"no export named {name!r}")
