#!/usr/bin/env bash
# Builds gh-elt's Lambda image (every function's binary, see Dockerfile), pushes it to ECR and
# points the ingest, transform and compact functions at it. `--dry-run` prints every command
# instead.
# Progress and commands go to stderr; stdout is the image URI alone: image=$(./docker_build.sh).
set -euo pipefail
cd "$(dirname "$0")" # the build context is the repository
# The AWS CLI v2 would page long JSON answers and wait for a key.
export AWS_PAGER=""

usage() {
  cat <<'USAGE'
Usage: ./docker_build.sh [options]

  --account ID        AWS account of the ECR registry (env AWS_ACCOUNT_ID; default: the caller's)
  --region REGION     (env AWS_REGION or AWS_DEFAULT_REGION; default: the AWS CLI's)
  --project NAME      the stack's ProjectName: functions NAME-ingest, NAME-transform and
                      NAME-compact (env PROJECT_NAME, default gh-elt)
  --repository NAME   the ECR repository, created if missing (env ECR_REPOSITORY, default: the project)
  --tag TAG           the image tag (env IMAGE_TAG; default: the commit and the architecture)
  --arch ARCH         arm64 or x86_64, as the stack's Architecture (env LAMBDA_ARCH, default arm64)
  --no-update         build and push only (before the stack exists)
  --dry-run           print the commands, run none
  -h, --help          this text

Prints the image URI on stdout (everything else goes to stderr): the stack's ImageUri.
USAGE
}

die() {
  echo "docker_build.sh: $*" >&2
  exit 2
}

account="${AWS_ACCOUNT_ID:-}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
project="${PROJECT_NAME:-gh-elt}"
repository="${ECR_REPOSITORY:-}"
tag="${IMAGE_TAG:-}"
arch="${LAMBDA_ARCH:-arm64}"
update=true
dry_run=false

while [[ $# -gt 0 ]]; do
  case "$1" in
    --account) account="${2:?--account needs a value}"; shift 2 ;;
    --region) region="${2:?--region needs a value}"; shift 2 ;;
    --project) project="${2:?--project needs a value}"; shift 2 ;;
    --repository) repository="${2:?--repository needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
    --no-update) update=false; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

case "$arch" in
  arm64) platform=linux/arm64 ;;
  x86_64) platform=linux/amd64 ;;
  *) die "--arch must be arm64 or x86_64 (as the stack's Architecture), not '$arch'" ;;
esac
[[ "$project" =~ ^[a-z][a-z0-9-]{1,15}$ ]] || die "--project must be the stack's ProjectName (lowercase, 2-16 characters), not '$project'"
repository="${repository:-$project}"

# Prints a command, then runs it unless this is a dry run.
run() {
  {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  } >&2
  if [[ "$dry_run" == false ]]; then
    "$@" >&2
  fi
}

say() {
  echo "$@" >&2
}

# What only AWS can tell is asked for, or shown as a placeholder in a dry run.
lookup() {
  local what="$1"
  shift
  if [[ "$dry_run" == true ]]; then
    printf '+ %s   # → %s\n' "$*" "$what" >&2
    echo "<$what>"
  else
    "$@"
  fi
}

if [[ -z "$region" ]]; then
  region="$(lookup region aws configure get region || true)"
  [[ -n "$region" ]] || die "no region: pass --region or set AWS_REGION"
fi
if [[ -z "$account" ]]; then
  account="$(lookup account aws sts get-caller-identity --query Account --output text || true)"
  [[ -n "$account" && "$account" != None ]] || die "no AWS account: pass --account or set AWS_ACCOUNT_ID (or sign in to the AWS CLI)"
fi
if [[ -z "$tag" ]]; then
  commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unversioned)"
  # Any change, untracked files included, gets a tag of its own (tags are immutable).
  if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
    commit="$commit-dirty-$(date -u +%Y%m%d%H%M%S)"
  fi
  tag="$commit-$arch"
fi

if [[ "$dry_run" == false ]]; then
  for tool in docker aws; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (Docker with buildx, and the AWS CLI)"
  done
fi

registry="$account.dkr.ecr.$region.amazonaws.com"
image="$registry/$repository:$tag"

say "== build $image ($platform)"
# --provenance=false: Lambda takes an image manifest, not the index BuildKit makes for attestations.
run docker buildx build --platform "$platform" --provenance=false --tag "$image" --load .

say "== push"
if [[ "$dry_run" == true ]] || ! aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1; then
  # In a dry run this shows what happens when the repository is missing.
  run aws ecr create-repository --region "$region" --repository-name "$repository" \
    --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true \
    --encryption-configuration encryptionType=AES256
fi
say "+ aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry"
if [[ "$dry_run" == false ]]; then
  aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry" >&2
fi
# Tags are immutable: an image already pushed under this tag (the same commit) is kept.
if [[ "$dry_run" == false ]] && aws ecr describe-images --region "$region" --repository-name "$repository" \
  --image-ids "imageTag=$tag" >/dev/null 2>&1; then
  say "$image is in the repository already; not pushed again"
else
  run docker push "$image"
fi

if [[ "$update" == true ]]; then
  say "== update the functions"
  for function in "$project-ingest" "$project-transform" "$project-compact"; do
    if [[ "$dry_run" == false ]] && ! aws lambda get-function --region "$region" --function-name "$function" >/dev/null 2>&1; then
      say "$function does not exist yet: deploy the stack with ImageUri=$image"
      continue
    fi
    run aws lambda update-function-code --region "$region" --function-name "$function" --image-uri "$image"
    run aws lambda wait function-updated-v2 --region "$region" --function-name "$function"
  done
fi

say "== image (the stack's ImageUri: deploy with it, or the next stack update puts the old image back):"
echo "$image"
