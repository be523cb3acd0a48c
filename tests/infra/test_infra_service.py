"""The Fargate service: health checks on /readyz, drain as long as the grace period, safe rollouts, scaling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.cdk_support import (
    TEST_IMAGE_TAG,
    as_text,
    exported_value,
    only_resource,
    require_cdk,
    resources_of,
    service_settings,
)

require_cdk()

from aws_cdk.assertions import Match, Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402
from infra.config import CONTAINER_PORT, DATABASE_NAME  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.service)


@pytest.fixture(scope="module")
def container(template: Template) -> dict[str, Any]:
    definitions = only_resource(template, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    assert len(definitions) == 1
    definition: dict[str, Any] = definitions[0]
    return definition


def test_cluster_has_container_insights(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )


def test_target_group_checks_readyz(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"Port": CONTAINER_PORT, "HealthCheckPath": "/readyz", "Matcher": {"HttpCode": "200"}},
    )


def _attributes(resource: dict[str, Any], key: str) -> dict[str, str]:
    return {item["Key"]: item["Value"] for item in resource["Properties"][key]}


def test_draining_outlasts_the_longest_request_and_the_load_balancer_lets_it_finish(
    template: Template, container: dict[str, Any]
) -> None:
    """ECS sends SIGTERM only once the load balancer has drained the task (its target unused: nothing in flight,
    or the deregistration delay over). A /stylize method=nst paints for up to the task's NST budget, so the delay
    must outlast it (it was the 20 s grace: a deployment or scale-in cut every longer painting); and the painting
    sends nothing, so it must also end within the load balancer's idle timeout."""
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    budget = float(environment.get("DEEPCANVAS_NST_MAX_SECONDS", service_settings()["nst_max_seconds"]))
    (group,) = resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    delay = int(_attributes(group, "TargetGroupAttributes")["deregistration_delay.timeout_seconds"])
    assert delay >= budget + 5, f"draining ({delay} s) ends before an NST painting of {budget:g} s"
    (balancer,) = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    idle = int(_attributes(balancer, "LoadBalancerAttributes")["idle_timeout.timeout_seconds"])
    assert budget + 5 <= idle, f"an NST painting of {budget:g} s outlasts the {idle} s idle timeout"


def test_container_stops_after_grace_plus_margin_and_listens_on_8000(
    container: dict[str, Any], deepcanvas: DeepCanvasApp
) -> None:
    assert container["StopTimeout"] == deepcanvas.config.grace_period_s + 10
    assert container["PortMappings"] == [{"ContainerPort": 8000, "Protocol": "tcp"}]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_container_environment_points_at_the_bucket_models_prefix(
    container: dict[str, Any], deepcanvas: DeepCanvasApp
) -> None:
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert as_text(environment["DEEPCANVAS_STORE"]) == "s3://<token>/models"
    assert environment["DEEPCANVAS_EMF_ENABLED"] == "true"
    assert "DEEPCANVAS_CORS_ORIGINS" not in environment  # no browser origin unless the context names one
    assert environment["DEEPCANVAS_GRACE_PERIOD_S"] == str(deepcanvas.config.grace_period_s)
    assert "DEEPCANVAS_ADMIN_TOKEN" not in environment


def test_every_deepcanvas_variable_of_the_task_is_a_setting_of_the_service(container: dict[str, Any]) -> None:
    """pydantic-settings ignores a DEEPCANVAS_* variable that names no field (extra="ignore"): a misspelt one would
    leave its setting at the default without a word."""
    fields = service_settings()
    names = [item["Name"] for item in container["Environment"] + container["Secrets"]]
    ours = [name for name in names if name.startswith("DEEPCANVAS_")]
    assert len(ours) >= 10
    assert [name for name in ours if name.removeprefix("DEEPCANVAS_").lower() not in fields] == []


def test_admin_token_and_api_key_are_generated_secrets_injected_as_container_secrets(
    template: Template, container: dict[str, Any]
) -> None:
    secrets = resources_of(template, "AWS::SecretsManager::Secret")
    assert len(secrets) == 2  # the admin token and the API key
    for name, prefix in (("DEEPCANVAS_ADMIN_TOKEN", "AdminToken"), ("DEEPCANVAS_API_KEYS", "ApiKey")):
        secret_id, secret = next((key, value) for key, value in secrets.items() if key.startswith(prefix))
        assert "GenerateSecretString" in secret["Properties"]
        assert {"Name": name, "ValueFrom": {"Ref": secret_id}} in container["Secrets"]
    assert "ApiKeySecretArn" in template.to_json()["Outputs"]


def test_database_endpoint_is_environment_and_its_credentials_are_secrets(
    container: dict[str, Any], deepcanvas: DeepCanvasApp
) -> None:
    database = Template.from_stack(deepcanvas.database)
    (instance_id,) = database.find_resources("AWS::RDS::DBInstance")
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert exported_value(database, environment["DEEPCANVAS_DATABASE_HOST"]) == {
        "Fn::GetAtt": [instance_id, "Endpoint.Address"]
    }
    assert exported_value(database, environment["DEEPCANVAS_DATABASE_PORT"]) == {
        "Fn::GetAtt": [instance_id, "Endpoint.Port"]
    }
    assert environment["DEEPCANVAS_DATABASE_NAME"] == DATABASE_NAME
    assert not {"DEEPCANVAS_DATABASE_URL", "DEEPCANVAS_DATABASE_USER", "DEEPCANVAS_DATABASE_PASSWORD"} & set(
        environment
    )
    # Fields of the instance's own secret (its attachment adds host and port to the same secret).
    (attachment_id,) = database.find_resources("AWS::SecretsManager::SecretTargetAttachment")
    secrets = {
        item["Name"]: item["ValueFrom"]["Fn::Join"][1]
        for item in container["Secrets"]
        if "Fn::Join" in item["ValueFrom"]
    }
    assert set(secrets) == {"DEEPCANVAS_DATABASE_USER", "DEEPCANVAS_DATABASE_PASSWORD"}
    for name, field in (("DEEPCANVAS_DATABASE_USER", "username"), ("DEEPCANVAS_DATABASE_PASSWORD", "password")):
        secret, suffix = secrets[name]
        assert exported_value(database, secret) == {"Ref": attachment_id}
        assert suffix == f":{field}::"


def test_image_comes_from_the_registry_with_the_context_tag(container: dict[str, Any]) -> None:
    assert as_text(container["Image"]).endswith(f"/<token>:{TEST_IMAGE_TAG}")


def test_deployments_roll_back_on_circuit_breaker(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "LaunchType": "FARGATE",
            "DeploymentConfiguration": Match.object_like(
                {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}, "MinimumHealthyPercent": 100}
            ),
            "NetworkConfiguration": {"AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "DISABLED"})},
        },
    )


def test_at_least_two_tasks_serve_in_the_two_zones_by_default(template: Template, deepcanvas: DeepCanvasApp) -> None:
    """One task was the default: a failed health check, an OOM kill or a zone outage was an outage until a new task
    had pulled its image and loaded its models. Two, in private subnets of both zones, keep one serving."""
    target = only_resource(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["MinCapacity"] >= 2
    service = only_resource(template, "AWS::ECS::Service")
    subnets = service["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
    network = Template.from_stack(deepcanvas.network)
    found = resources_of(network, "AWS::EC2::Subnet")
    zones = {
        json.dumps(found[exported_value(network, subnet)["Ref"]]["Properties"]["AvailabilityZone"])
        for subnet in subnets
    }
    assert len(zones) == 2


def test_service_scales_between_context_bounds(template: Template, deepcanvas: DeepCanvasApp) -> None:
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": deepcanvas.config.min_capacity, "MaxCapacity": deepcanvas.config.max_capacity},
    )


def test_service_tracks_cpu_alone_by_default(template: Template, deepcanvas: DeepCanvasApp) -> None:
    """The service saturates on CPU (model threads on both cores); a request costs from milliseconds to a 55 s NST
    painting, so a request count per task is no measure of load: 120 a minute, the old second policy, scaled the
    service out at a few per cent of what a task serves."""
    policies = [
        policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for policy in resources_of(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    ]
    assert [policy["PredefinedMetricSpecification"]["PredefinedMetricType"] for policy in policies] == [
        "ECSServiceAverageCPUUtilization"
    ]
    assert policies[0]["TargetValue"] == deepcanvas.config.cpu_target_percent


def test_only_the_load_balancer_reaches_the_tasks(template: Template) -> None:
    ingress = resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
    task_rules = [rule["Properties"] for rule in ingress if rule["Properties"].get("FromPort") == CONTAINER_PORT]
    assert task_rules, "no ingress rule to the container port"
    assert all("SourceSecurityGroupId" in rule and "CidrIp" not in rule for rule in task_rules)


def test_the_public_load_balancer_answers_404_for_metrics_itself(template: Template) -> None:
    rules = resources_of(template, "AWS::ElasticLoadBalancingV2::ListenerRule")
    internal = [
        rule["Properties"]
        for rule in rules.values()
        if "/metrics" in rule["Properties"]["Conditions"][0].get("PathPatternConfig", {}).get("Values", [])
    ]
    assert len(internal) == 1 and len(internal[0]["Conditions"]) == 1
    (action,) = internal[0]["Actions"]
    assert action["Type"] == "fixed-response" and action["FixedResponseConfig"]["StatusCode"] == "404"
    # the target group's health check goes to the tasks directly: /readyz is behind no rule
    for rule in rules.values():
        for condition in rule["Properties"]["Conditions"]:
            assert "/readyz" not in condition.get("PathPatternConfig", {}).get("Values", [])
