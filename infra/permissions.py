"""Least-privilege IAM: the service's task role (the model store prefix, and two documents it may write) and the
pipeline's ECS deploy role (this service, its task definition family and its two roles)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import MODELS_PREFIX, runtime_document_object_keys


def model_store_statements(bucket: s3.IBucket) -> list[iam.PolicyStatement]:
    """Read and list only under ``models/``; write only the runtime-parameter and active-version documents."""
    return [
        iam.PolicyStatement(
            sid="ReadModelStore",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{MODELS_PREFIX}/*")],
        ),
        iam.PolicyStatement(
            sid="ListModelStore",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{MODELS_PREFIX}/*"]}},
        ),
        iam.PolicyStatement(
            sid="WriteRuntimeDocuments",
            actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects(key) for key in runtime_document_object_keys()],
        ),
    ]


def ecs_deploy_statements(scope: Construct, service: ecs.BaseService) -> list[iam.PolicyStatement]:
    """What CodePipeline's ECS deploy action needs for ``service`` alone: describe its task definition, register
    a revision that passes only the task's two roles, roll the one service and watch its tasks.

    ``scope`` is the stack the ARNs are written in; the service's cluster, family and roles come from ``service``.
    """
    task_definition = service.task_definition
    execution_role = task_definition.execution_role
    assert execution_role is not None, "the task definition has no execution role to pass"
    stack = Stack.of(scope)
    cluster_name = service.cluster.cluster_name
    return [
        iam.PolicyStatement(
            sid="ReadAndRegisterTaskDefinitions",
            # IAM scopes neither action to a resource; what a new revision may run is bounded by PassRole below.
            actions=["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="TagNewRevisionsOfTheFamily",
            actions=["ecs:TagResource"],
            resources=[
                stack.format_arn(
                    service="ecs",
                    resource="task-definition",
                    resource_name=f"{task_definition.family}:*",
                    arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                )
            ],
            conditions={"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
        ),
        iam.PolicyStatement(
            sid="RollTheService",
            actions=["ecs:DescribeServices", "ecs:UpdateService"],
            resources=[service.service_arn],
        ),
        iam.PolicyStatement(
            sid="WatchTheServiceTasks",
            actions=["ecs:DescribeTasks"],
            resources=[
                stack.format_arn(
                    service="ecs",
                    resource="task",
                    resource_name=f"{cluster_name}/*",
                    arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                )
            ],
        ),
        iam.PolicyStatement(
            sid="ListTheClusterTasks",
            actions=["ecs:ListTasks"],
            resources=["*"],
            conditions={"ArnEquals": {"ecs:cluster": service.cluster.cluster_arn}},
        ),
        iam.PolicyStatement(
            sid="PassOnlyTheTaskRoles",
            actions=["iam:PassRole"],
            resources=[task_definition.task_role.role_arn, execution_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
    ]
