"""Alarms: 5xx rate, the load balancer's own 5xx, the interactive routes' p99 latency, CPU, memory, unhealthy
hosts, no healthy host and the database's CPU, free storage and connections, each notifying the SNS topic; a
dashboard."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cdk_support import (
    TELEMETRY_SOURCE,
    emf_metrics,
    module_constants,
    only_resource,
    require_cdk,
    resources_of,
    service_routes,
)

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
            ["Latency"],
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
    (rate,) = [alarm for alarm in alarms if "RequestCount" in _metric_names(alarm)]
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


# The routes a person waits on; /stylize stands for AdaIN alone (the service labels method=nst apart).
INTERACTIVE = {"/detect", "/classify", "/identify", "/verify", "/stylize"}


def test_no_alarm_reads_the_load_balancers_response_time(alarms: list[dict[str, Any]]) -> None:
    """Its p99 covers every route, NST's paintings of up to 55 s too: at low traffic a few a minute held it over the
    5 s threshold with nothing wrong, an alarm operators learn to ignore, and then a real /detect slowdown went by."""
    assert [alarm for alarm in alarms if "TargetResponseTime" in _metric_names(alarm)] == []


@pytest.fixture(scope="module")
def latency(alarms: list[dict[str, Any]]) -> dict[str, Any]:
    (alarm,) = [alarm for alarm in alarms if "Latency" in _metric_names(alarm)]
    return alarm


def test_latency_alarm_watches_the_slowest_interactive_route_in_seconds(
    latency: dict[str, Any], deepcanvas: DeepCanvasApp
) -> None:
    (expression,) = [q for q in latency["Metrics"] if "Expression" in q]
    stats = [q for q in latency["Metrics"] if "MetricStat" in q]
    assert expression["ReturnData"] is not False and all(q["ReturnData"] is False for q in stats)
    ids = ", ".join(q["Id"] for q in stats)
    assert expression["Expression"] == f"MAX([{ids}]) / 1000"  # the service emits milliseconds
    assert {q["MetricStat"]["Stat"] for q in stats} == {"p99"}
    assert {q["MetricStat"]["Period"] for q in stats} == {60}
    assert (latency["Threshold"], latency["ComparisonOperator"]) == (
        deepcanvas.config.alarm_p99_latency_s,
        "GreaterThanThreshold",
    )
    assert latency["TreatMissingData"] == "notBreaching"  # a quiet minute on a route is no breach


def test_latency_alarm_reads_what_the_service_emits_for_each_interactive_route_and_not_nst(
    latency: dict[str, Any], deepcanvas: DeepCanvasApp
) -> None:
    """Namespace, metric, dimension names and values as app/telemetry.py writes them and the task is configured:
    a dimension value off by a character reads a metric that never exists, and the alarm never fires."""
    environment = {
        variable["Name"]: variable["Value"]
        for variable in only_resource(Template.from_stack(deepcanvas.service), "AWS::ECS::TaskDefinition")[
            "ContainerDefinitions"
        ][0]["Environment"]
    }
    unit, dimension_names = emf_metrics()["Latency"]
    assert unit == "Milliseconds"
    nst_route = module_constants(TELEMETRY_SOURCE)["NST_ROUTE"]
    routes = []
    for query in (q for q in latency["Metrics"] if "MetricStat" in q):
        metric = query["MetricStat"]["Metric"]
        assert (metric["Namespace"], metric["MetricName"]) == (environment["DEEPCANVAS_EMF_NAMESPACE"], "Latency")
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert set(dimensions) == set(dimension_names)
        assert dimensions["service"] == environment["DEEPCANVAS_SERVICE_NAME"]
        routes.append(dimensions["route"])
    assert sorted(routes) == sorted(INTERACTIVE)
    assert set(routes) <= service_routes("post"), "each must be a route template the service labels its metrics by"
    assert nst_route not in routes and nst_route.startswith("/stylize")


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
        "Latency",
        "CPUUtilization",
        "MemoryUtilization",
        "FreeStorageSpace",
        "DatabaseConnections",
    ):
        assert metric in body
    assert module_constants(TELEMETRY_SOURCE)["NST_ROUTE"] in body, "NST's latency is graphed, if in no alarm"
    assert "NST included" in body, "the load balancer's p99 says it counts NST's paintings"
