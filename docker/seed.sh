#!/bin/sh
# One-shot seeding of the compose stack's S3 store: creates the bucket of $DEEPCANVAS_STORE, then
# publishes every artifact of the store baked into the image ($SEED_FROM), giving `stable` to the version
# the baked store calls stable. moto keeps everything in memory, so this runs on every `up`.
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

stable_version() {
    python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("stable", ""))' "$1"
}

for manifest in "$SEED_FROM"/*/*/manifest.json; do
    folder="${manifest%/manifest.json}"
    name_dir="$(dirname "$folder")"
    stable=""
    [ -f "$name_dir/aliases.json" ] && stable="$(stable_version "$name_dir/aliases.json")"
    if [ "$(basename "$folder")" = "$stable" ]; then
        deepcanvas models push "$folder" --store "$DEEPCANVAS_STORE" --alias stable
    else
        deepcanvas models push "$folder" --store "$DEEPCANVAS_STORE"
    fi
done
