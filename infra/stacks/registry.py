"""The container registry: an ECR repository with immutable tags, scan on push and a bounded history."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ecr as ecr
from constructs import Construct


class RegistryStack(Stack):
    """ECR repository the pipeline pushes to (one tag per commit) and the service pulls from."""

    def __init__(self, scope: Construct, construct_id: str, *, keep_images: int, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.repository = ecr.Repository(
            self,
            "ImageRepository",
            image_scan_on_push=True,
            # A tag names one build for ever: a deployment can be traced and rolled back by commit id.
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            encryption=ecr.RepositoryEncryption.AES_256,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description=f"keep the last {keep_images} images",
                    tag_status=ecr.TagStatus.ANY,
                    max_image_count=keep_images,
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
