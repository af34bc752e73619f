#!/usr/bin/env bash
# Sets up gh-elt's job state: seeds the ingest job's item in the `jobs` table with its baseline day
# (the day the first run starts at, 00:00 UTC; by default 3 days back), and with --create-tables
# creates the `jobs` and `job_run_details` tables first (for use without the CloudFormation stack,
# which creates them).
#
# Uses the AWS CLI. Honours AWS_ENDPOINT_URL (e.g. a local moto server) and the usual AWS_*
# credentials, profile and region variables.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: infra/init.sh [options]

  --baseline-day YYYY-MM-DD  the day the first run starts at (default: BASELINE_DAYS days ago)
  --days N                   how many days back the baseline day is (env BASELINE_DAYS, default 3)
  --job-id ID                the ingest job (env INGEST_JOB_ID, default ghactivity_ingest)
  --jobs-table NAME          (env JOBS_TABLE, default jobs)
  --runs-table NAME          (env JOB_RUNS_TABLE, default job_run_details)
  --create-tables            create both tables (on-demand, point-in-time recovery) if missing
  --reset                    the job exists: drop its bookmark (and its failing, parked and queued
                             hours) and start again at the baseline day
  --region REGION            (env AWS_REGION / AWS_DEFAULT_REGION, or the CLI's configuration)
  -h, --help                 this text

An existing job is left alone unless --reset is given.
USAGE
}

die() {
  echo "init.sh: $*" >&2
  exit 2
}

days="${BASELINE_DAYS:-3}"
baseline_day=""
job_id="${INGEST_JOB_ID:-ghactivity_ingest}"
jobs_table="${JOBS_TABLE:-jobs}"
runs_table="${JOB_RUNS_TABLE:-job_run_details}"
create_tables=false
reset=false
# The AWS CLI v1 reads only AWS_DEFAULT_REGION; the SDKs (and the CLI v2) read AWS_REGION.
region="${AWS_REGION:-}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --baseline-day) baseline_day="${2:?--baseline-day needs a date}"; shift 2 ;;
    --days) days="${2:?--days needs a number}"; shift 2 ;;
    --job-id) job_id="${2:?--job-id needs a value}"; shift 2 ;;
    --jobs-table) jobs_table="${2:?--jobs-table needs a name}"; shift 2 ;;
    --runs-table) runs_table="${2:?--runs-table needs a name}"; shift 2 ;;
    --create-tables) create_tables=true; shift ;;
    --reset) reset=true; shift ;;
    --region) region="${2:?--region needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

command -v aws >/dev/null 2>&1 || die "the AWS CLI is needed (https://aws.amazon.com/cli/, or pip install awscli)"
[[ "$job_id" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--job-id may hold letters, digits, '_', '.' and '-', not '$job_id'"
[[ "$days" =~ ^[0-9]{1,5}$ ]] || die "--days must be a whole number of days (at most 99999), not '$days'"

# The baseline day: given, or `days` back from today (UTC); GNU date first, then BSD date (macOS).
if [[ -z "$baseline_day" ]]; then
  baseline_day="$(date -u -d "-${days} days" +%F 2>/dev/null || date -u -v "-${days}d" +%F)"
fi
# A real day (2024-02-30 is not): it must read back the same, with GNU or BSD date.
if [[ ! "$baseline_day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] ||
  [[ "$(date -u -d "$baseline_day" +%F 2>/dev/null || date -u -j -f %F "$baseline_day" +%F 2>/dev/null)" != "$baseline_day" ]]; then
  die "--baseline-day must be a day as YYYY-MM-DD, not '$baseline_day'"
fi

aws_args=()
if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
  aws_args+=(--endpoint-url "$AWS_ENDPOINT_URL")
fi
if [[ -n "$region" ]]; then
  aws_args+=(--region "$region")
fi
ddb() {
  aws "${aws_args[@]}" dynamodb "$@"
}

# Creates a table unless it exists: partition key job_id, and optionally a numeric sort key.
create_table() {
  local table="$1" sort_key="${2:-}"
  if ddb describe-table --table-name "$table" >/dev/null 2>&1; then
    echo "table $table exists"
    return
  fi
  local attributes=("AttributeName=job_id,AttributeType=S")
  local keys=("AttributeName=job_id,KeyType=HASH")
  if [[ -n "$sort_key" ]]; then
    attributes+=("AttributeName=$sort_key,AttributeType=N")
    keys+=("AttributeName=$sort_key,KeyType=RANGE")
  fi
  ddb create-table --table-name "$table" --billing-mode PAY_PER_REQUEST \
    --attribute-definitions "${attributes[@]}" --key-schema "${keys[@]}" \
    --sse-specification Enabled=true >/dev/null
  ddb wait table-exists --table-name "$table"
  ddb update-continuous-backups --table-name "$table" \
    --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null
  echo "created table $table (on-demand, point-in-time recovery)"
}

if [[ "$create_tables" == true ]]; then
  create_table "$jobs_table"
  create_table "$runs_table" job_run_time
fi

key="{\"job_id\":{\"S\":\"$job_id\"}}"
item="{\"job_id\":{\"S\":\"$job_id\"},\"baseline_days\":{\"N\":\"$days\"},\"baseline_day\":{\"S\":\"$baseline_day\"},\"version\":{\"N\":\"0\"}}"

if [[ "$reset" == true ]]; then
  # Raising the version makes any run still working on the job fail its next (conditional) write.
  ddb update-item --table-name "$jobs_table" --key "$key" \
    --update-expression 'SET baseline_day = :day, baseline_days = :days, version = if_not_exists(version, :zero) + :one REMOVE job_run_bookmark_details, lease, missing_hour, failing_hour, parked_hours, retry_hours' \
    --expression-attribute-values "{\":day\":{\"S\":\"$baseline_day\"},\":days\":{\"N\":\"$days\"},\":zero\":{\"N\":\"0\"},\":one\":{\"N\":\"1\"}}" >/dev/null
  echo "job $job_id reset in $jobs_table: the next run starts at $baseline_day 00:00 UTC"
  exit 0
fi

if errors="$(ddb put-item --table-name "$jobs_table" --item "$item" \
  --condition-expression 'attribute_not_exists(job_id)' 2>&1 >/dev/null)"; then
  echo "job $job_id seeded in $jobs_table: the first run starts at $baseline_day 00:00 UTC"
elif [[ "$errors" == *ConditionalCheckFailed* ]]; then
  current="$(ddb get-item --table-name "$jobs_table" --key "$key" \
    --query 'Item.job_run_bookmark_details.M.last_run_file_name.S' --output text)"
  echo "job $job_id already exists in $jobs_table (last hour: ${current/#None/none yet}); left as it is (--reset starts it again)"
else
  echo "$errors" >&2
  die "could not seed job $job_id in $jobs_table"
fi
