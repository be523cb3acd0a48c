#!/bin/sh
# One-shot seeding of the compose stack's S3 store: creates the bucket of $DEEPCANVAS_STORE, then
# publishes every artifact of the store baked into the image ($SEED_FROM) with the aliases it has there
# (`stable` included). moto keeps everything in memory, so this runs on every `up`.
set -eu
SEED_FROM="${SEED_FROM:-/opt/deepcanvas/store}"

python - <<'PY'
import os
from urllib.parse import urlparse

import boto3

bucket = urlparse(os.environ["DEEPCANVAS_STORE"]).netloc
s3 = boto3.client("s3", endpoint_url=os.environ.get("DEEPCANVAS_S3_ENDPOINT_URL"))
if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
    s3.create_bucket(Bucket=bucket)
print(f"bucket {bucket} ready")
PY

deepcanvas models push-store "$SEED_FROM" --store "$DEEPCANVAS_STORE"
