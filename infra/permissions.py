"""Least-privilege IAM for the service's task role: the model store prefix, and two documents it may write."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

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
