"""Least privilege: the task reads only models/ and writes only the two runtime documents."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cdk_support import (
    as_list,
    as_text,
    exported_value,
    only_resource,
    policy_statements_of_role,
    require_cdk,
)

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.service)


def _role_statements(template: Template, role_property: str) -> list[dict[str, Any]]:
    role_arn = only_resource(template, "AWS::ECS::TaskDefinition")[role_property]
    role_id = role_arn["Fn::GetAtt"][0]
    return policy_statements_of_role(template, role_id)


@pytest.fixture(scope="module")
def task_statements(template: Template) -> dict[str, dict[str, Any]]:
    """The task role's statements by action: one action per statement, or the test fails."""
    statements = _role_statements(template, "TaskRoleArn")
    by_action: dict[str, dict[str, Any]] = {}
    for statement in statements:
        actions = as_list(statement["Action"])
        assert len(actions) == 1, f"task role statement grants several actions: {actions}"
        assert statement["Effect"] == "Allow"
        by_action[actions[0]] = statement
    assert len(by_action) == len(statements), "an action is granted twice"
    return by_action


def test_task_role_may_only_get_list_and_put_objects(task_statements: dict[str, dict[str, Any]]) -> None:
    assert sorted(task_statements) == ["s3:GetObject", "s3:ListBucket", "s3:PutObject"]


def test_task_role_reads_only_under_the_models_prefix(task_statements: dict[str, dict[str, Any]]) -> None:
    get = task_statements["s3:GetObject"]
    assert [as_text(resource) for resource in as_list(get["Resource"])] == ["<token>/models/*"]
    listing = task_statements["s3:ListBucket"]
    assert "Fn::ImportValue" in listing["Resource"], "ListBucket must name the model bucket's ARN"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["models/*"]}}


def test_task_role_writes_only_the_runtime_documents(task_statements: dict[str, dict[str, Any]]) -> None:
    put = task_statements["s3:PutObject"]
    assert sorted(as_text(resource) for resource in as_list(put["Resource"])) == [
        "<token>/models/_runtime/active.json",
        "<token>/models/_runtime/params.json",
    ]


def test_execution_role_reads_the_admin_and_api_key_secrets_and_pulls_images(template: Template) -> None:
    statements = _role_statements(template, "ExecutionRoleArn")
    secret_ids = template.find_resources("AWS::SecretsManager::Secret")
    assert len(secret_ids) == 2
    granted = {
        (action, str(statement["Resource"])) for statement in statements for action in as_list(statement["Action"])
    }
    for secret_id in secret_ids:
        assert ("secretsmanager:GetSecretValue", str({"Ref": secret_id})) in granted
    assert any(action == "ecr:BatchGetImage" for action, _ in granted)
    assert not any(action.startswith(("s3:", "cloudwatch:")) for action, _ in granted)


def test_execution_role_reads_only_the_admin_api_key_and_database_secrets(
    template: Template, deepcanvas: DeepCanvasApp
) -> None:
    database = Template.from_stack(deepcanvas.database)
    admin_id, api_key_id = sorted(template.find_resources("AWS::SecretsManager::Secret"))
    (attachment_id,) = database.find_resources("AWS::SecretsManager::SecretTargetAttachment")
    readable = []
    for statement in _role_statements(template, "ExecutionRoleArn"):
        if any(action.startswith("secretsmanager:") for action in as_list(statement["Action"])):
            assert set(as_list(statement["Action"])) <= {
                "secretsmanager:GetSecretValue",
                "secretsmanager:DescribeSecret",
            }
            for resource in as_list(statement["Resource"]):
                readable.append(exported_value(database, resource) if "Fn::ImportValue" in resource else resource)
    expected = [{"Ref": admin_id}, {"Ref": api_key_id}, {"Ref": attachment_id}]
    assert sorted(map(str, readable)) == sorted(map(str, expected))
