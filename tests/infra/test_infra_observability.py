"""Alarms: 5xx rate, the load balancer's own 5xx, p99 latency, CPU, memory, unhealthy hosts, no healthy host and
the database's CPU, free storage and connections, each notifying the SNS topic; a dashboard."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cdk_support import require_cdk, resources_of

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.observability)


@pytest.fixture(scope="module")
def alarms(template: Template) -> list[dict[str, Any]]:
    return [alarm["Properties"] for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values()]


def _metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {q["MetricStat"]["Metric"]["MetricName"] for q in alarm.get("Metrics", []) if "MetricStat" in q}


def test_there_is_one_alarm_per_signal(alarms: list[dict[str, Any]]) -> None:
    names = [frozenset(_metric_names(alarm)) for alarm in alarms]
    assert sorted(map(sorted, names)) == sorted(
        [
            ["HTTPCode_Target_5XX_Count", "RequestCount"],
            ["TargetResponseTime"],
            ["CPUUtilization"],
            ["MemoryUtilization"],
            ["UnHealthyHostCount"],
            ["HTTPCode_ELB_5XX_Count"],
            ["HealthyHostCount"],
            ["CPUUtilization"],
            ["FreeStorageSpace"],
            ["DatabaseConnections"],
        ]
    )


def test_every_alarm_notifies_the_topic_on_alarm_and_on_ok(template: Template, alarms: list[dict[str, Any]]) -> None:
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["OKActions"] == [{"Ref": topic_id}]


def test_5xx_alarm_divides_target_errors_by_requests(alarms: list[dict[str, Any]]) -> None:
    (rate,) = [alarm for alarm in alarms if "Metrics" in alarm]
    (expression,) = [q["Expression"] for q in rate["Metrics"] if "Expression" in q]
    assert "errors / requests" in expression
    stats = {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in rate["Metrics"] if "MetricStat" in q}
    assert stats == {"errors": "HTTPCode_Target_5XX_Count", "requests": "RequestCount"}


def _alarm_on(alarms: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    (alarm,) = [a for a in alarms if a.get("MetricName") == metric]
    return alarm


def _dimension_names(alarm: dict[str, Any]) -> set[str]:
    return {dimension["Name"] for dimension in alarm["Dimensions"]}


def test_5xx_the_load_balancer_answers_itself_raise_an_alarm(
    alarms: list[dict[str, Any]], deepcanvas: DeepCanvasApp
) -> None:
    """502 (a task gone mid-request), 503 (no healthy task) and 504 (idle timeout) come from the load balancer and
    never reach a task: the target 5xx rate stayed at 0 through a whole outage."""
    alarm = _alarm_on(alarms, "HTTPCode_ELB_5XX_Count")
    assert (alarm["Namespace"], alarm["Statistic"]) == ("AWS/ApplicationELB", "Sum")
    assert _dimension_names(alarm) == {"LoadBalancer"}
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        deepcanvas.config.alarm_elb_5xx_count,
        "GreaterThanThreshold",
    )


def test_no_healthy_task_raises_an_alarm(alarms: list[dict[str, Any]]) -> None:
    """With every task failing /readyz (or none running) the unhealthy-host alarm can stay at 0; this one cannot."""
    alarm = _alarm_on(alarms, "HealthyHostCount")
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Minimum",
        1,
        "LessThanThreshold",
    )
    assert _dimension_names(alarm) == {"LoadBalancer", "TargetGroup"}


def test_latency_alarm_watches_the_99th_percentile(alarms: list[dict[str, Any]]) -> None:
    (latency,) = [alarm for alarm in alarms if alarm.get("MetricName") == "TargetResponseTime"]
    assert latency["ExtendedStatistic"] == "p99"


def _database_alarm(alarms: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    (alarm,) = [a for a in alarms if a.get("Namespace") == "AWS/RDS" and a.get("MetricName") == metric]
    return alarm


def test_database_alarms_watch_the_instance_at_the_configured_thresholds(
    alarms: list[dict[str, Any]], deepcanvas: DeepCanvasApp
) -> None:
    config = deepcanvas.config
    cpu = _database_alarm(alarms, "CPUUtilization")
    assert (cpu["Threshold"], cpu["ComparisonOperator"]) == (config.alarm_utilisation_percent, "GreaterThanThreshold")
    connections = _database_alarm(alarms, "DatabaseConnections")
    assert (connections["Threshold"], connections["Statistic"]) == (config.alarm_db_connections, "Maximum")
    storage = _database_alarm(alarms, "FreeStorageSpace")
    assert storage["ComparisonOperator"] == "LessThanThreshold"
    assert storage["Threshold"] == config.alarm_db_free_storage_gib * 1024**3
    assert storage["Statistic"] == "Minimum"
    for alarm in (cpu, connections, storage):
        (dimension,) = alarm["Dimensions"]
        assert dimension["Name"] == "DBInstanceIdentifier"
        assert "Fn::ImportValue" in dimension["Value"], "the alarm must name the database stack's instance"


def test_dashboard_shows_the_alarmed_metrics(template: Template) -> None:
    (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    body = str(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "HTTPCode_Target_5XX_Count",
        "HTTPCode_ELB_5XX_Count",
        "TargetResponseTime",
        "CPUUtilization",
        "MemoryUtilization",
        "FreeStorageSpace",
        "DatabaseConnections",
    ):
        assert metric in body
