"""The pipeline: Source from a CodeStar connection, Build (tests, image per commit), Deploy to ECS with a role
that may roll this one service and pass only its task's two roles."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cdk_support import (
    as_list,
    as_text,
    exported_value,
    only_resource,
    policy_statements_of_role,
    require_cdk,
    resources_of,
)

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.pipeline)


@pytest.fixture(scope="module")
def build_project(template: Template) -> dict[str, Any]:
    return only_resource(template, "AWS::CodeBuild::Project")


def test_pipeline_stages_are_source_build_deploy(template: Template) -> None:
    stages = only_resource(template, "AWS::CodePipeline::Pipeline")["Stages"]
    providers = [(s["Name"], [a["ActionTypeId"]["Provider"] for a in s["Actions"]]) for s in stages]
    assert providers == [("Source", ["CodeStarSourceConnection"]), ("Build", ["CodeBuild"]), ("Deploy", ["ECS"])]


def test_build_runs_privileged_for_docker(build_project: dict[str, Any]) -> None:
    assert build_project["Environment"]["PrivilegedMode"] is True


def test_buildspec_tests_then_pushes_an_image_tagged_with_the_commit(build_project: dict[str, Any]) -> None:
    spec = build_project["Source"]["BuildSpec"]
    assert spec.index("make test") < spec.index("docker push")
    assert "IMAGE_TAG=$CODEBUILD_RESOLVED_SOURCE_VERSION" in spec
    assert "imagedefinitions.json" in spec


REPOSITORY = Path(__file__).resolve().parents[2]


def _build_commands(build_project: dict[str, Any]) -> list[str]:
    commands: list[str] = json.loads(build_project["Source"]["BuildSpec"])["phases"]["build"]["commands"]
    return commands


def test_the_image_gets_the_torch_pair_the_tests_ran_on(build_project: dict[str, Any]) -> None:
    """make test installs the Makefile's pinned torch pair; the Dockerfile's default is unpinned ("torch
    torchvision"), so the pipeline pushed an image with whichever torch was newest that day, never tested."""
    commands = _build_commands(build_project)
    (build,) = [index for index, command in enumerate(commands) if "docker build" in command]
    assert '--build-arg TORCH_SPEC="$TORCH_SPEC"' in commands[build]
    (pin,) = [index for index, command in enumerate(commands) if "print-torch-spec" in command]
    assert commands[pin] == 'export TORCH_SPEC="$(make --no-print-directory -s print-torch-spec)"' and pin < build
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    printed = subprocess.run(
        ["make", "--no-print-directory", "-s", "print-torch-spec"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    pinned = re.search(r"^TORCH_SPEC \?= (.+)$", (REPOSITORY / "Makefile").read_text(), re.MULTILINE)
    assert pinned is not None and printed == pinned.group(1).strip()
    assert all("==" in requirement for requirement in printed.split())


def test_the_built_image_must_answer_readyz_before_it_is_pushed(build_project: dict[str, Any]) -> None:
    """The tests run the code in a virtualenv: the image itself (its dependencies, baked store, user) was pushed
    and deployed without ever being started, and a broken one was found only by the circuit breaker."""
    commands = _build_commands(build_project)
    (check,) = [index for index, command in enumerate(commands) if "/readyz" in command]
    line = commands[check]
    assert "docker run" in line and "$IMAGE_URI" in line and "timeout" in line
    assert "[ $ready = 0 ] && docker push $IMAGE_URI" in line  # pushed only once ready
    assert [index for index, command in enumerate(commands) if "docker push" in command] == [check]
    (build,) = [index for index, command in enumerate(commands) if "docker build" in command]
    assert build < check < len(commands) - 1 and "imagedefinitions.json" in commands[-1]


def test_deploy_action_reads_the_image_definitions_from_the_build(template: Template) -> None:
    stages = only_resource(template, "AWS::CodePipeline::Pipeline")["Stages"]
    build, deploy = stages[1]["Actions"][0], stages[2]["Actions"][0]
    assert deploy["InputArtifacts"] == build["OutputArtifacts"]
    assert deploy["Configuration"]["FileName"] == "imagedefinitions.json"


@pytest.fixture(scope="module")
def service(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.service)


@pytest.fixture(scope="module")
def deploy_role_id(template: Template) -> str:
    stages = only_resource(template, "AWS::CodePipeline::Pipeline")["Stages"]
    role_arn = stages[2]["Actions"][0]["RoleArn"]
    role_id: str = role_arn["Fn::GetAtt"][0]
    return role_id


@pytest.fixture(scope="module")
def deploy_statements(template: Template, deploy_role_id: str) -> dict[str, dict[str, Any]]:
    """The deploy role's statements by action."""
    return {
        action: statement
        for statement in policy_statements_of_role(template, deploy_role_id)
        for action in as_list(statement["Action"])
    }


def test_deploy_action_passes_only_the_task_and_execution_roles_to_ecs_tasks(
    deploy_statements: dict[str, dict[str, Any]], service: Template
) -> None:
    pass_role = deploy_statements["iam:PassRole"]
    resources = as_list(pass_role["Resource"])
    assert "*" not in resources
    task = only_resource(service, "AWS::ECS::TaskDefinition")
    passed = sorted(str(exported_value(service, resource)) for resource in resources)
    assert passed == sorted(str(task[key]) for key in ("TaskRoleArn", "ExecutionRoleArn"))
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_deploy_action_rolls_and_watches_only_this_service(
    deploy_statements: dict[str, dict[str, Any]], service: Template
) -> None:
    (service_id,) = service.find_resources("AWS::ECS::Service")
    (cluster_id,) = service.find_resources("AWS::ECS::Cluster")
    for action in ("ecs:UpdateService", "ecs:DescribeServices"):
        assert exported_value(service, deploy_statements[action]["Resource"]) == {"Ref": service_id}
    tasks = deploy_statements["ecs:DescribeTasks"]["Resource"]
    assert as_text(tasks) == "arn:<token>:ecs:<token>:<token>:task/<token>/*"
    (cluster_name,) = [part for part in tasks["Fn::Join"][1] if "Fn::ImportValue" in part]
    assert exported_value(service, cluster_name) == {"Ref": cluster_id}
    listing = deploy_statements["ecs:ListTasks"]["Condition"]["ArnEquals"]["ecs:cluster"]
    assert exported_value(service, listing) == {"Fn::GetAtt": [cluster_id, "Arn"]}


def test_deploy_action_tags_only_new_revisions_of_the_service_family(
    deploy_statements: dict[str, dict[str, Any]], service: Template
) -> None:
    family = only_resource(service, "AWS::ECS::TaskDefinition")["Family"]
    tag = deploy_statements["ecs:TagResource"]
    assert as_text(tag["Resource"]).endswith(f":task-definition/{family}:*")
    assert tag["Condition"] == {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}


def test_no_pipeline_role_may_pass_roles_or_change_ecs_on_every_resource(template: Template) -> None:
    # IAM scopes neither task definition action to a resource; ListTasks is held to the cluster by a condition.
    unscoped_allowed = {"ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ecr:GetAuthorizationToken"}
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "*" not in as_list(statement["Resource"]):
                continue
            actions = set(as_list(statement["Action"]))
            if actions == {"ecs:ListTasks"}:
                assert "ecs:cluster" in statement["Condition"]["ArnEquals"]
                continue
            assert actions <= unscoped_allowed, f"{sorted(actions - unscoped_allowed)} on every resource"


def test_only_the_pipeline_role_may_assume_the_deploy_role(template: Template, deploy_role_id: str) -> None:
    trust = resources_of(template, "AWS::IAM::Role")[deploy_role_id]["Properties"]["AssumeRolePolicyDocument"]
    (pipeline_role_id,) = [
        role_id
        for role_id, role in resources_of(template, "AWS::IAM::Role").items()
        if role_id.startswith("PipelineRole")
    ]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"AWS": {"Fn::GetAtt": [pipeline_role_id, "Arn"]}}
