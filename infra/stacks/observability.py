"""Observability: alarms on the load balancer, the service and the database, one SNS topic, and a dashboard."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config import EMF_NAMESPACE, INTERACTIVE_ROUTES, NST_ROUTE, SERVICE_NAME, DeployConfig

PERIOD = Duration.minutes(1)
GIB = 1024**3


class ObservabilityStack(Stack):
    """Ten alarms, each notifying the alarm topic on ALARM and on OK, and a dashboard of the same metrics."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        service: ecs.FargateService,
        target_group: elbv2.ApplicationTargetGroup,
        load_balancer: elbv2.ApplicationLoadBalancer,
        database: rds.DatabaseInstance,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.topic = sns.Topic(self, "AlarmTopic", display_name="DeepCanvas alarms", enforce_ssl=True)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        metrics = target_group.metrics
        self.error_rate = cloudwatch.MathExpression(
            # Percent of requests the tasks answered with 5xx; 0 when idle rather than a division by zero.
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "errors": metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=PERIOD),
                "requests": metrics.request_count(period=PERIOD),
            },
            label="Target 5xx (% of requests)",
            period=PERIOD,
        )
        # What the load balancer answers itself (no task chosen, a task gone mid-request, no answer in time).
        self.elb_5xx = load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=PERIOD)
        # The load balancer's p99 covers every route, NST's paintings of up to 55 s too: a few a minute at low
        # traffic held it over any threshold /detect needs. Graphed only; the alarm reads the service's own
        # per-route latency (EMF), interactive routes alone.
        self.target_latency_p99 = metrics.target_response_time(
            statistic="p99", period=PERIOD, label="Load balancer p99, every route, NST included (s)"
        )
        self.route_latency = {route: self._route_latency(route) for route in INTERACTIVE_ROUTES}
        self.nst_latency = self._route_latency(NST_ROUTE)
        self.latency_p99 = cloudwatch.MathExpression(
            # The slowest interactive route's p99, in seconds (the service emits milliseconds). A route with no
            # request in a minute has no value there and is left out of MAX; none at all is missing, not breaching.
            expression=f"MAX([{', '.join(f'r{i}' for i in range(len(INTERACTIVE_ROUTES)))}]) / 1000",
            using_metrics={f"r{i}": metric for i, metric in enumerate(self.route_latency.values())},
            label="Slowest interactive route p99 (s)",
            period=PERIOD,
        )
        self.cpu = service.metric_cpu_utilization(period=PERIOD)
        self.memory = service.metric_memory_utilization(period=PERIOD)
        self.unhealthy_hosts = metrics.unhealthy_host_count(statistic="Maximum", period=PERIOD)
        self.healthy_hosts = metrics.healthy_host_count(statistic="Minimum", period=PERIOD)
        self.db_cpu = database.metric_cpu_utilization(period=PERIOD)
        self.db_free_storage = database.metric_free_storage_space(statistic="Minimum", period=PERIOD)
        self.db_connections = database.metric_database_connections(statistic="Maximum", period=PERIOD)
        self.alarms = self._alarms()
        for alarm in self.alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
            alarm.add_ok_action(cloudwatch_actions.SnsAction(self.topic))
        self.dashboard = self._dashboard()

    @staticmethod
    def _route_latency(route: str) -> cloudwatch.Metric:
        """The p99 of the service's ``Latency`` (ms) for one route, as app/telemetry.py's EmfEmitter writes it."""
        return cloudwatch.Metric(
            namespace=EMF_NAMESPACE,
            metric_name="Latency",
            dimensions_map={"service": SERVICE_NAME, "route": route},
            statistic="p99",
            period=PERIOD,
            label=f"{route} p99",
        )

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    ) -> cloudwatch.Alarm:
        # Three of five minutes: one slow request or one noisy minute does not page anyone.
        return cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    def _alarms(self) -> list[cloudwatch.Alarm]:
        config = self.config
        busy = config.alarm_utilisation_percent
        return [
            self._alarm(
                "Target5xxRate", self.error_rate, config.alarm_5xx_percent, f"over {config.alarm_5xx_percent}% 5xx"
            ),
            self._alarm(
                "LatencyP99",
                self.latency_p99,
                config.alarm_p99_latency_s,
                f"p99 latency of an interactive route ({', '.join(INTERACTIVE_ROUTES)}; AdaIN only for /stylize, "
                f"NST is {NST_ROUTE} and in no alarm) over {config.alarm_p99_latency_s} s",
            ),
            self._alarm("CpuUtilisation", self.cpu, busy, f"service CPU over {busy}%"),
            self._alarm("MemoryUtilisation", self.memory, busy, f"service memory over {busy}%"),
            self._alarm(
                "LoadBalancer5xx",
                self.elb_5xx,
                config.alarm_elb_5xx_count,
                f"over {config.alarm_elb_5xx_count} 5xx a minute from the load balancer itself (502: a task "
                "closed or died mid-request, 503: no healthy task, 504: no answer within the idle timeout)",
            ),
            self._alarm("UnhealthyHosts", self.unhealthy_hosts, 0, "a task fails the /readyz health check"),
            self._alarm(
                "NoHealthyHosts",
                self.healthy_hosts,
                1,
                "no task passes the /readyz health check: the load balancer answers every request 503",
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            ),
            *self._database_alarms(),
        ]

    def _database_alarms(self) -> list[cloudwatch.Alarm]:
        config = self.config
        busy, free_gib, connections = (
            config.alarm_utilisation_percent,
            config.alarm_db_free_storage_gib,
            config.alarm_db_connections,
        )
        return [
            self._alarm("DatabaseCpu", self.db_cpu, busy, f"database CPU over {busy}%"),
            self._alarm(
                "DatabaseFreeStorage",
                self.db_free_storage,
                free_gib * GIB,
                f"database free storage under {free_gib} GiB (storage autoscaling has reached its maximum?)",
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            ),
            self._alarm(
                "DatabaseConnections", self.db_connections, connections, f"over {connections} database connections"
            ),
        ]

    def _dashboard(self) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="5xx: targets (%), load balancer (count)", left=[self.error_rate], right=[self.elb_5xx], width=8
            ),
            cloudwatch.GraphWidget(
                title="p99 (s): slowest interactive route (alarmed), load balancer (every route, NST included)",
                left=[self.latency_p99, self.target_latency_p99],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Hosts", left=[self.healthy_hosts], right=[self.unhealthy_hosts], width=8),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Service CPU and memory (%)", left=[self.cpu, self.memory], width=12),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=12),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Service latency p99 by route (ms): interactive routes; NST painting, right",
                left=list(self.route_latency.values()),
                right=[self.nst_latency],
                width=24,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Database CPU (%)", left=[self.db_cpu], width=8),
            cloudwatch.GraphWidget(title="Database free storage (bytes)", left=[self.db_free_storage], width=8),
            cloudwatch.GraphWidget(title="Database connections", left=[self.db_connections], width=8),
        )
        return dashboard
