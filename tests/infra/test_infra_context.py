"""Context values reach the templates: HTTPS with a certificate (or plain HTTP asked for), grace period, NAT count,
image tag; and no certificate without the opt-in stops synthesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cdk_support import TEST_CERTIFICATE_ARN, as_text, only_resource, require_cdk, resources_of

require_cdk()

from aws_cdk.assertions import Match, Template  # noqa: E402

from infra.app import build_app, main, parse_context  # noqa: E402

CERTIFICATE = TEST_CERTIFICATE_ARN
CONTEXT: dict[str, Any] = {
    "certificate_arn": CERTIFICATE,
    "grace_period_s": "30",
    "nst_max_seconds": "40",
    "nat_gateways": "2",
    "image_tag": "0123abcd",
    "min_capacity": "2",
    "max_capacity": "6",
    "requests_per_target": "3000",
    "db_multi_az": "false",
    "db_deletion_protection": "false",
    "db_backup_retention_days": "14",
    "db_instance_type": "m7g.large",
    "cors_origins": "https://app.example.com,https://admin.example.com",
    "require_api_key": "false",
}


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    built = build_app(Path(tmp_path_factory.mktemp("cdk.out.context")), CONTEXT)
    return {
        "service": Template.from_stack(built.service),
        "network": Template.from_stack(built.network),
        "database": Template.from_stack(built.database),
    }


def test_a_certificate_serves_https_and_redirects_http(templates: dict[str, Template]) -> None:
    service = templates["service"]
    found = resources_of(service, "AWS::ElasticLoadBalancingV2::Listener").values()
    listeners = {listener["Properties"]["Port"]: listener["Properties"] for listener in found}
    assert sorted(listeners) == [80, 443]
    https, http = listeners[443], listeners[80]
    assert (https["Protocol"], https["Certificates"]) == ("HTTPS", [{"CertificateArn": CERTIFICATE}])
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-")  # TLS 1.3, and 1.2 with forward secrecy
    # Port 80 answers a permanent redirect to HTTPS on 443 and forwards nothing to the tasks.
    (redirect,) = http["DefaultActions"]
    assert redirect["Type"] == "redirect"
    config = redirect["RedirectConfig"]
    assert (config["Protocol"], config["Port"], config["StatusCode"]) == ("HTTPS", "443", "HTTP_301")
    outputs = service.to_json()["Outputs"]
    assert as_text(outputs["ServiceUrl"]["Value"]).startswith("https://")


def test_grace_period_and_nst_budget_set_drain_stop_timeout_and_environment(templates: dict[str, Template]) -> None:
    service = templates["service"]
    # Draining outlasts the NST budget (40 s) and its margin; the stop timeout follows the grace (30 s).
    service.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"TargetGroupAttributes": Match.array_with([{"Key": "deregistration_delay.timeout_seconds", "Value": "50"}])},
    )
    (container,) = only_resource(service, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    assert container["StopTimeout"] == 40
    assert {"Name": "DEEPCANVAS_GRACE_PERIOD_S", "Value": "30"} in container["Environment"]
    assert {"Name": "DEEPCANVAS_NST_MAX_SECONDS", "Value": "40"} in container["Environment"]
    cors = {"Name": "DEEPCANVAS_CORS_ORIGINS", "Value": "https://app.example.com,https://admin.example.com"}
    assert cors in container["Environment"]
    assert "DEEPCANVAS_API_KEYS" not in {secret["Name"] for secret in container["Secrets"]}  # open, as asked
    assert as_text(container["Image"]).endswith(":0123abcd")


def test_capacity_and_nat_gateways_follow_the_context(templates: dict[str, Template]) -> None:
    templates["network"].resource_count_is("AWS::EC2::NatGateway", 2)
    templates["service"].has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 6}
    )


def test_requests_per_target_adds_a_request_count_policy_beside_cpu(templates: dict[str, Template]) -> None:
    policies = resources_of(templates["service"], "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    targets = {
        config["PredefinedMetricSpecification"]["PredefinedMetricType"]: config["TargetValue"]
        for config in (policy["Properties"]["TargetTrackingScalingPolicyConfiguration"] for policy in policies)
    }
    assert targets == {"ECSServiceAverageCPUUtilization": 60, "ALBRequestCountPerTarget": 3000}


def test_database_size_availability_and_protection_follow_the_context(templates: dict[str, Template]) -> None:
    instance = only_resource(templates["database"], "AWS::RDS::DBInstance")
    assert (instance["MultiAZ"], instance["DeletionProtection"]) == (False, False)
    assert (instance["BackupRetentionPeriod"], instance["DBInstanceClass"]) == (14, "db.m7g.large")


def test_command_line_synthesizes_every_stack_with_context_pairs(tmp_path: Path) -> None:
    main(["--outdir", str(tmp_path), "-c", f"certificate_arn={CERTIFICATE}", "-c", "image_tag=feedbeef"])
    assert len(list(tmp_path.glob("*.template.json"))) == 7
    template = json.loads((tmp_path / "DeepCanvas-Service.template.json").read_text())
    (task,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    assert as_text(task["Properties"]["ContainerDefinitions"][0]["Image"]).endswith(":feedbeef")


def test_context_pairs_without_an_equals_sign_are_refused() -> None:
    assert parse_context(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_context(["image_tag"])


def test_without_a_certificate_or_the_opt_in_nothing_is_synthesized(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no certificate_arn"):
        build_app(tmp_path, {"image_tag": "feedbeef"})
    with pytest.raises(SystemExit, match=r"^python -m infra.app: no certificate_arn.*allow_plain_http=true"):
        main(["--outdir", str(tmp_path), "-c", "image_tag=feedbeef"])
    assert not list(tmp_path.glob("*.template.json"))


def test_plain_http_on_port_80_only_when_asked_for(tmp_path: Path) -> None:
    service = Template.from_stack(build_app(tmp_path, {"allow_plain_http": "true", "image_tag": "feedbeef"}).service)
    listener = only_resource(service, "AWS::ElasticLoadBalancingV2::Listener")
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    assert "Certificates" not in listener and "SslPolicy" not in listener
    (action,) = listener["DefaultActions"]
    assert action["Type"] == "forward"
    assert as_text(service.to_json()["Outputs"]["ServiceUrl"]["Value"]).startswith("http://")
