"""Continuous delivery: source from a CodeStar connection, test and build the image, deploy it to ECS."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import CONTAINER_NAME, DeployConfig
from infra.permissions import ecs_deploy_statements

IMAGE_DEFINITIONS = "imagedefinitions.json"
# Docker Hub rate-limits anonymous pulls from shared CodeBuild IPs; ECR Public mirrors the official images.
BASE_IMAGE = "public.ecr.aws/docker/library/python:3.11-slim-bookworm"
# How long the freshly built image may take to answer /readyz 200 before the build fails (it loads the baked store).
READY_TIMEOUT_S = 300


def build_spec() -> codebuild.BuildSpec:
    """Test; build the image with the tested torch pair, tagged with the commit id; start it and wait for /readyz;
    push it; then name it for the ECS deploy action."""
    return codebuild.BuildSpec.from_object(
        {
            "version": "0.2",
            "env": {"shell": "bash"},
            "phases": {
                "install": {"runtime-versions": {"python": "3.11"}},
                "pre_build": {
                    "commands": [
                        "export IMAGE_TAG=$CODEBUILD_RESOLVED_SOURCE_VERSION",
                        "export IMAGE_URI=$REPOSITORY_URI:$IMAGE_TAG",
                        "export REGISTRY=${REPOSITORY_URI%%/*}",
                        "aws ecr get-login-password | docker login --username AWS --password-stdin $REGISTRY",
                    ]
                },
                "build": {
                    "commands": [
                        "make test",
                        # The image gets the torch pair the tests ran on (the Dockerfile's default is unpinned).
                        'export TORCH_SPEC="$(make --no-print-directory -s print-torch-spec)"',
                        # Tags are immutable: a re-run of the same commit reuses its image (checked when it was
                        # pushed) instead of failing.
                        "if aws ecr describe-images --repository-name $REPOSITORY_NAME --image-ids imageTag=$IMAGE_TAG"
                        " > /dev/null 2>&1; then echo image $IMAGE_URI exists; export FRESH_IMAGE=;"
                        ' else docker build --build-arg BASE_IMAGE=$BASE_IMAGE --build-arg TORCH_SPEC="$TORCH_SPEC"'
                        " -t $IMAGE_URI . && export FRESH_IMAGE=1; fi",
                        # The image itself must start and load its models (/readyz 200) before it is pushed: the
                        # tests above ran the code in a virtualenv, not this image.
                        'if [ -n "$FRESH_IMAGE" ]; then docker run -d --name readiness -p 8000:8000 $IMAGE_URI'
                        f" && timeout {READY_TIMEOUT_S} bash -c 'until curl -fsS http://127.0.0.1:8000/readyz"
                        " > /dev/null; do sleep 5; done'; ready=$?; docker logs readiness 2>&1 | tail -n 50;"
                        " docker rm -f readiness > /dev/null; [ $ready = 0 ] && docker push $IMAGE_URI; fi",
                        # Written last, so a failed step above leaves no image definitions behind.
                        'printf \'[{"name":"%s","imageUri":"%s"}]\' $CONTAINER_NAME $IMAGE_URI'
                        f" > {IMAGE_DEFINITIONS}",
                    ]
                },
            },
            "artifacts": {"files": [IMAGE_DEFINITIONS]},
        }
    )


class PipelineStack(Stack):
    """CodePipeline with the stages Source, Build and Deploy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        repository: ecr.IRepository,
        service: ecs.BaseService,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        source_output = codepipeline.Artifact("Source")
        build_output = codepipeline.Artifact("Image")
        project = self._build_project(repository)
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_type=codepipeline.PipelineType.V2,
            cross_account_keys=False,
            restart_execution_on_update=True,
        )
        self.pipeline.add_stage(
            stage_name="Source",
            actions=[
                actions.CodeStarConnectionsSourceAction(
                    action_name="Source",
                    connection_arn=config.connection_arn,
                    owner=config.repo_owner,
                    repo=config.repo_name,
                    branch=config.branch,
                    output=source_output,
                )
            ],
        )
        self.pipeline.add_stage(
            stage_name="Build",
            actions=[
                actions.CodeBuildAction(
                    action_name="Build", project=project, input=source_output, outputs=[build_output]
                )
            ],
        )
        self.deploy_role = self._deploy_role(service)
        self.pipeline.add_stage(
            stage_name="Deploy",
            actions=[
                actions.EcsDeployAction(
                    action_name="Deploy",
                    service=service,
                    image_file=build_output.at_path(IMAGE_DEFINITIONS),
                    deployment_timeout=Duration.minutes(30),
                    # Left to itself the action grants its role ECS and iam:PassRole on every resource: it gets
                    # a role whose policy it cannot change, holding only what ecs_deploy_statements names.
                    role=self.deploy_role.without_policy_updates(),
                )
            ],
        )

    def _deploy_role(self, service: ecs.BaseService) -> iam.Role:
        role = iam.Role(
            self,
            "DeployRole",
            assumed_by=iam.ArnPrincipal(self.pipeline.role.role_arn),
            description="CodePipeline's ECS deploy action: one service, its task definition family and roles",
        )
        for statement in ecs_deploy_statements(self, service):
            role.add_to_policy(statement)
        # The action reads imagedefinitions.json from the artifact bucket.
        self.pipeline.artifact_bucket.grant_read(role)
        return role

    def _build_project(self, repository: ecr.IRepository) -> codebuild.PipelineProject:
        project = codebuild.PipelineProject(
            self,
            "Build",
            build_spec=build_spec(),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.LARGE,
                # Docker-in-CodeBuild needs a privileged container.
                privileged=True,
            ),
            environment_variables={
                "REPOSITORY_URI": codebuild.BuildEnvironmentVariable(value=repository.repository_uri),
                "REPOSITORY_NAME": codebuild.BuildEnvironmentVariable(value=repository.repository_name),
                "CONTAINER_NAME": codebuild.BuildEnvironmentVariable(value=CONTAINER_NAME),
                "BASE_IMAGE": codebuild.BuildEnvironmentVariable(value=BASE_IMAGE),
            },
            timeout=Duration.minutes(60),
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(
                    log_group=logs.LogGroup(self, "BuildLogs", retention=logs.RetentionDays.ONE_MONTH)
                )
            ),
        )
        repository.grant_pull_push(project)
        repository.grant(project, "ecr:DescribeImages")
        return project
