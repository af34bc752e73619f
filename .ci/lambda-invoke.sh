#!/usr/bin/env bash
# The transform Lambda through its real runtime loop: `cargo lambda watch` serves the binary,
# `cargo lambda invoke` hands it the sample SQS payloads in events/samples/, and the raw and
# curated buckets are a moto server started here. Run from the repository root, after the tests
# (it uses target/debug/elt to make the raw hour).
set -euo pipefail

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
moto_port=$(free_port)
invoke_port=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m moto.server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
# Waits until the command after WHAT and LOG succeeds (up to 20 s), or says what did not start
# and shows its log.
wait_for() {
  local what=$1 log=$2
  shift 2
  for _ in $(seq 100); do
    "$@" && return
    sleep 0.2
  done
  echo "$what did not start" >&2
  tail -20 "$log" >&2
  exit 1
}
wait_for moto "$work/moto.log" curl -s -o /dev/null "$AWS_ENDPOINT_URL"
python3 - <<'PY'
import boto3
s3 = boto3.client("s3")
for bucket in ("gh-elt-raw", "gh-elt-curated"):
    s3.create_bucket(Bucket=bucket)
PY
# The job tables as an operator makes them without the stack.
./infra/init.sh --create-tables >/dev/null

cargo lambda watch --invoke-port "$invoke_port" --package transform --bin transform \
  --env-var CURATED_BUCKET=gh-elt-curated >"$work/watch.log" 2>&1 &
pids+=($!)
invoke() {
  cargo lambda invoke transform --invoke-port "$invoke_port" --data-file "events/samples/$1"
}
wait_for "cargo lambda watch" "$work/watch.log" grep -q 'starting Runtime server' "$work/watch.log"

expect() {
  local sample=$1 wanted=$2 got
  got=$(invoke "$sample")
  echo "$sample -> $got"
  if [ "$got" != "$wanted" ]; then
    echo "expected $wanted" >&2
    tail -20 "$work/watch.log" >&2
    exit 1
  fi
}

# The test event and a key that is not an hour file are acknowledged.
expect sqs-s3-test-event.json '{"batchItemFailures":[]}'
expect sqs-s3-outside-hours.json '{"batchItemFailures":[]}'
# The raw object is not there yet: the message is reported as failed, to come back later.
expect sqs-s3-object-created.json '{"batchItemFailures":[{"itemIdentifier":"b7d1c2a0-1111-4c4c-8a8a-000000000001"}]}'
# Once it is, the file is transformed into the curated bucket.
target/debug/elt gen --hour 2024-03-05-14 --events 2000 "$work/2024-03-05-14.json.gz" >/dev/null
python3 - "$work/2024-03-05-14.json.gz" <<'PY'
import sys, boto3
boto3.client("s3").upload_file(sys.argv[1], "gh-elt-raw", "landing/ghactivity/2024-03-05-14.json.gz")
PY
expect sqs-s3-object-created.json '{"batchItemFailures":[]}'
python3 - <<'PY'
import boto3
keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="gh-elt-curated").get("Contents", [])]
print("curated:", keys)
# The hour's files (named by hour, part and run) and the Delta commit that adds them.
day = "ghactivity/year=2024/month=03/dayofmonth=05/"
parts = [k for k in keys if k.startswith(day + "part-2024-03-05-14-") and k.endswith(".snappy.parquet")]
assert parts, keys
assert "ghactivity/_delta_log/00000000000000000000.json" in keys, keys
PY
python3 - <<'PY'
import json, boto3
log = boto3.client("s3").get_object(Bucket="gh-elt-curated", Key="ghactivity/_delta_log/00000000000000000000.json")
actions = [json.loads(line) for line in log["Body"].read().decode().splitlines() if line.strip()]
adds = [a["add"] for a in actions if "add" in a]
txns = [a["txn"] for a in actions if "txn" in a]
assert adds and all(a["path"].startswith("year=2024/month=03/dayofmonth=05/part-2024-03-05-14-") for a in adds), adds
assert any(t.get("appId", "").endswith("2024-03-05-14") for t in txns), txns
print("delta commit: %d file(s) added for 2024-03-05-14" % len(adds))
PY
grep -q '"_aws"' "$work/watch.log" || { echo "no EMF metrics line in the logs" >&2; exit 1; }
echo "transform Lambda: runtime loop OK"
