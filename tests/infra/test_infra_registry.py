"""The image repository: scanned on push, immutable tags, a bounded number of images."""

from __future__ import annotations

import json

import pytest

from tests.infra.cdk_support import only_resource, require_cdk

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.registry)


def test_images_are_scanned_on_push_and_tags_are_immutable(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ECR::Repository",
        {"ImageScanningConfiguration": {"ScanOnPush": True}, "ImageTagMutability": "IMMUTABLE"},
    )


def test_lifecycle_policy_keeps_only_the_last_images(template: Template, deepcanvas: DeepCanvasApp) -> None:
    repository = only_resource(template, "AWS::ECR::Repository")
    rules = json.loads(repository["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    selections = [rule["selection"] for rule in rules]
    assert {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": deepcanvas.config.keep_images} in [
        {key: selection.get(key) for key in ("tagStatus", "countType", "countNumber")} for selection in selections
    ]
    assert all(rule["action"]["type"] == "expire" for rule in rules)
