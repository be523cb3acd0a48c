"""The service: ECS on Fargate behind an Application Load Balancer, scaled on CPU (the models' saturation)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import (
    ALB_IDLE_TIMEOUT_S,
    CONTAINER_NAME,
    CONTAINER_PORT,
    DATABASE_NAME,
    DATABASE_PORT,
    EMF_NAMESPACE,
    HEALTH_CHECK_PATH,
    MODELS_PREFIX,
    SERVICE_NAME,
    DeployConfig,
)
from infra.permissions import model_store_statements
from infra.routing import add_route_rules


class ServiceStack(Stack):
    """Cluster, task definition, Fargate service, load balancer and the service's autoscaling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        vpc: ec2.IVpc,
        bucket: s3.IBucket,
        repository: ecr.IRepository,
        database: rds.DatabaseInstance,
        database_secret: secretsmanager.ISecret,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.database = database
        self.database_secret = database_secret
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.admin_token = secretsmanager.Secret(
            self,
            "AdminToken",
            description="Bearer token of the DeepCanvas /admin endpoints",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=48),
        )
        self.api_key = (
            secretsmanager.Secret(
                self,
                "ApiKey",
                description="Key that the DeepCanvas model routes require (Authorization: Bearer <key>)",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=40
                ),
            )
            if config.require_api_key
            else None
        )
        self.task_definition = self._task_definition(bucket, repository)
        self.service = self._fargate_service()
        # The database's one ingress rule: from the tasks' security group, on its port (the rule lives here).
        self.service.connections.allow_to(database, ec2.Port.tcp(DATABASE_PORT), "DeepCanvas tasks to the database")
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(ALB_IDLE_TIMEOUT_S),
        )
        listener = self._listener()
        self.target_group = self._target_group(listener)
        add_route_rules(listener, self.target_group, self.config.admin_cidrs)
        self._autoscaling()
        CfnOutput(self, "ServiceUrl", value=f"{self._scheme}://{self.load_balancer.load_balancer_dns_name}")
        CfnOutput(self, "AdminTokenSecretArn", value=self.admin_token.secret_arn)
        if self.api_key is not None:
            CfnOutput(self, "ApiKeySecretArn", value=self.api_key.secret_arn)

    @property
    def image_tag(self) -> str:
        """The commit whose image the task definition names (DeployConfig refuses a deployment without one)."""
        assert self.config.image_tag, "DeployConfig requires an image_tag"
        return self.config.image_tag

    @property
    def _scheme(self) -> str:
        return "https" if self.config.certificate_arn else "http"

    def _container_environment(self, bucket: s3.IBucket) -> dict[str, str]:
        cors = {"DEEPCANVAS_CORS_ORIGINS": self.config.cors_origins} if self.config.cors_origins else {}
        return cors | {
            "DEEPCANVAS_STORE": f"s3://{bucket.bucket_name}/{MODELS_PREFIX}",
            "DEEPCANVAS_S3_REGION": Aws.REGION,
            "DEEPCANVAS_EMF_ENABLED": "true",
            # What the latency alarm reads (infra/stacks/observability.py): named here, not left to the defaults.
            "DEEPCANVAS_EMF_NAMESPACE": EMF_NAMESPACE,
            "DEEPCANVAS_SERVICE_NAME": SERVICE_NAME,
            "DEEPCANVAS_GRACE_PERIOD_S": str(self.config.grace_period_s),
            # The same budget the deregistration delay is sized for (infra/config.py: deregistration_delay_s).
            "DEEPCANVAS_NST_MAX_SECONDS": f"{self.config.nst_max_seconds:g}",
            # The service assembles DEEPCANVAS_DATABASE_URL from these and the two secrets below.
            "DEEPCANVAS_DATABASE_HOST": self.database.db_instance_endpoint_address,
            "DEEPCANVAS_DATABASE_PORT": self.database.db_instance_endpoint_port,
            "DEEPCANVAS_DATABASE_NAME": DATABASE_NAME,
        }

    def _container_secrets(self) -> dict[str, ecs.Secret]:
        # Injected by the execution role at task start: the task role itself may read no secret.
        api_key = {"DEEPCANVAS_API_KEYS": ecs.Secret.from_secrets_manager(self.api_key)} if self.api_key else {}
        return api_key | {
            "DEEPCANVAS_ADMIN_TOKEN": ecs.Secret.from_secrets_manager(self.admin_token),
            "DEEPCANVAS_DATABASE_USER": ecs.Secret.from_secrets_manager(self.database_secret, "username"),
            "DEEPCANVAS_DATABASE_PASSWORD": ecs.Secret.from_secrets_manager(self.database_secret, "password"),
        }

    def _task_definition(self, bucket: s3.IBucket, repository: ecr.IRepository) -> ecs.FargateTaskDefinition:
        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=self.config.cpu,
            memory_limit_mib=self.config.memory,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        # EMF lines in this log group become metrics: the task needs no cloudwatch:PutMetricData.
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.THREE_MONTHS)
        task.add_container(
            CONTAINER_NAME,
            image=ecs.ContainerImage.from_ecr_repository(repository, self.image_tag),
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, protocol=ecs.Protocol.TCP)],
            environment=self._container_environment(bucket),
            secrets=self._container_secrets(),
            logging=ecs.LogDrivers.aws_logs(stream_prefix=CONTAINER_NAME, log_group=log_group),
            # SIGTERM, then grace_period_s for in-flight requests, then a margin before SIGKILL.
            stop_timeout=Duration.seconds(self.config.stop_timeout_s),
        )
        for statement in model_store_statements(bucket):
            task.add_to_task_role_policy(statement)
        return task

    def _fargate_service(self) -> ecs.FargateService:
        # No desired_count: autoscaling owns it, and a deployment must not reset it to a constant.
        return ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # Models load before /readyz turns 200: do not kill tasks that are still loading.
            health_check_grace_period=Duration.seconds(self.config.health_check_grace_s),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
            platform_version=ecs.FargatePlatformVersion.LATEST,
        )

    def _listener(self) -> elbv2.ApplicationListener:
        if not self.config.certificate_arn:
            # Only with allow_plain_http=true (DeployConfig refuses a deployment with neither).
            return self.load_balancer.add_listener("Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=True)
        # Port 80 only answers a 301 to HTTPS: no request is served, and none reaches the tasks, in clear text.
        self.load_balancer.add_redirect(source_port=80, target_port=443)
        return self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_arn(self.config.certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=True,
        )

    def _target_group(self, listener: elbv2.ApplicationListener) -> elbv2.ApplicationTargetGroup:
        return listener.add_targets(
            "Service",
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service.load_balancer_target(container_name=CONTAINER_NAME, container_port=CONTAINER_PORT)],
            health_check=elbv2.HealthCheck(
                path=HEALTH_CHECK_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            # ECS sends SIGTERM only once the target is drained: draining outlasts the longest request (an NST
            # painting), and ends at once when nothing is in flight. The service's grace covers what is left.
            deregistration_delay=Duration.seconds(self.config.deregistration_delay_s),
        )

    def _autoscaling(self) -> None:
        scaling = self.service.auto_scale_task_count(
            min_capacity=self.config.min_capacity, max_capacity=self.config.max_capacity
        )
        # Scale out fast, scale in slowly: a new task pays an image pull and a model load before it serves. CPU is
        # what saturates: one process whose model threads (OpenVINO's, torch's for NST) use both cores.
        scaling.scale_on_cpu_utilization(
            "CpuScaling",
            target_utilization_percent=self.config.cpu_target_percent,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )
        if self.config.requests_per_target:  # off by default: see DeployConfig.requests_per_target
            scaling.scale_on_request_count(
                "RequestScaling",
                requests_per_target=self.config.requests_per_target,
                target_group=self.target_group,
                scale_out_cooldown=Duration.seconds(60),
                scale_in_cooldown=Duration.seconds(300),
            )
