#!/bin/sh
# Serve /data over S3 on port 9000 with one key pair; each bucket of S3_BUCKETS (default
# executor) is made at start, if missing.
set -eu
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY (the key the fleet signs its requests with)}"
: "${S3_SECRET_KEY:?set S3_SECRET_KEY}"
for bucket in ${S3_BUCKETS:-executor}; do
    mkdir -p "/data/$bucket"
done
exec s3s-fs --host 0.0.0.0 --port 9000 --access-key "$S3_ACCESS_KEY" \
    --secret-key "$S3_SECRET_KEY" /data
