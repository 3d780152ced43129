#!/bin/sh
# compose's one-shot minio-bucket service: the bucket, and one MinIO user per quern service holding
# only its policy (minio/<service>.json). The root account is used here and nowhere else.
# Run again at every `up`: it creates what is missing and resets each user's password and policy.
set -eu

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$S3_BUCKET"

for service in gateway runner results; do
  case "$service" in  # set -u stops here, naming the variable, if one is not set
    gateway) password=$MINIO_GATEWAY_PASSWORD ;;
    runner) password=$MINIO_RUNNER_PASSWORD ;;
    results) password=$MINIO_RESULTS_PASSWORD ;;
  esac
  mc admin policy create local "quern-$service" "/policies/$service.json"
  mc admin user add local "quern-$service" "$password"
  # Attaching a policy the user already holds is refused as "already in effect": that is done, not an error.
  if ! answer=$(mc admin policy attach local "quern-$service" --user "quern-$service" 2>&1); then
    case "$answer" in
      *"already in effect"*) ;;
      *) echo "$answer" >&2; exit 1 ;;
    esac
  fi
done
echo "bucket $S3_BUCKET and users quern-gateway, quern-runner, quern-results ready"
