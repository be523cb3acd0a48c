"""The pipeline: Source from a CodeStar connection, Build (tests, image per commit), Deploy to ECS."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cdk_support import only_resource, require_cdk

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


def test_deploy_action_reads_the_image_definitions_from_the_build(template: Template) -> None:
    stages = only_resource(template, "AWS::CodePipeline::Pipeline")["Stages"]
    build, deploy = stages[1]["Actions"][0], stages[2]["Actions"][0]
    assert deploy["InputArtifacts"] == build["OutputArtifacts"]
    assert deploy["Configuration"]["FileName"] == "imagedefinitions.json"
