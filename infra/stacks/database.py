"""The identity database: RDS PostgreSQL in the VPC's isolated subnets, encrypted, its credentials generated
in Secrets Manager. The service stack admits its tasks to it; nothing else can reach it."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DATABASE_NAME, DATABASE_PORT, DATABASE_USER, DeployConfig


class DatabaseStack(Stack):
    """One PostgreSQL instance (Multi-AZ as configured) and the secret holding its user and password."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployConfig, vpc: ec2.IVpc, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # No ingress here: the service stack adds the one rule (from its tasks' security group), so this
        # stack never refers to the service and the two deploy in order.
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="DeepCanvas identity database, reachable from the service tasks only",
            allow_all_outbound=False,
        )
        engine = rds.DatabaseInstanceEngine.postgres(
            version=rds.PostgresEngineVersion.of(config.db_engine_version, config.db_major_version)
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            instance_type=ec2.InstanceType(config.db_instance_type),
            vpc=vpc,
            # No route to or from the internet: the tasks reach it inside the VPC.
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.security_group],
            publicly_accessible=False,
            port=DATABASE_PORT,
            database_name=DATABASE_NAME,
            credentials=rds.Credentials.from_generated_secret(DATABASE_USER),
            # Clients must use TLS (psycopg's default sslmode=prefer negotiates it).
            parameter_group=rds.ParameterGroup(self, "Parameters", engine=engine, parameters={"rds.force_ssl": "1"}),
            storage_encrypted=True,
            storage_type=rds.StorageType.GP3,
            allocated_storage=config.db_allocated_storage_gib,
            max_allocated_storage=config.db_max_allocated_storage_gib,
            multi_az=config.db_multi_az,
            auto_minor_version_upgrade=True,
            backup_retention=Duration.days(config.db_backup_retention_days),
            delete_automated_backups=False,
            copy_tags_to_snapshot=True,
            deletion_protection=config.db_deletion_protection,
            # Enrolments are people's consent records: deleting the stack leaves a final snapshot.
            removal_policy=RemovalPolicy.SNAPSHOT,
            cloudwatch_logs_exports=["postgresql"],
            cloudwatch_logs_retention=logs.RetentionDays.THREE_MONTHS,
        )
        secret = self.instance.secret
        assert secret is not None, "credentials from a generated secret always give the instance a secret"
        self.secret: secretsmanager.ISecret = secret
        CfnOutput(self, "DatabaseSecretArn", value=secret.secret_arn)
