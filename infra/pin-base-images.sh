#!/usr/bin/env bash
# Pins the Dockerfile's base images to the digests their tags point at now.
#
#   infra/pin-base-images.sh            # rewrite the Dockerfile's RUST_IMAGE and LAMBDA_BASE_IMAGE
#   infra/pin-base-images.sh --check    # only print what would change
#
# Needs Docker with buildx and access to public.ecr.aws. The Rust tag follows
# rust-toolchain.toml, so bump the toolchain first, then run this.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[[ "${1:-}" == "--check" ]] && check=true

toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
declare -A tags=(
  [RUST_IMAGE]="public.ecr.aws/docker/library/rust:${toolchain}-slim-bookworm"
  [LAMBDA_BASE_IMAGE]="public.ecr.aws/lambda/provided:al2023"
)

for arg in RUST_IMAGE LAMBDA_BASE_IMAGE; do
  tag=${tags[$arg]}
  # The index digest: one pin serves every architecture.
  digest=$(docker buildx imagetools inspect "$tag" --format '{{json .Manifest}}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])')
  pinned="${tag}@${digest}"
  current=$(sed -n "s/^ARG ${arg}=//p" Dockerfile)
  if [[ "$current" == "$pinned" ]]; then
    echo "$arg: up to date ($pinned)"
  elif $check; then
    echo "$arg: $current -> $pinned"
  else
    sed -i "s|^ARG ${arg}=.*|ARG ${arg}=${pinned}|" Dockerfile
    echo "$arg: pinned $pinned"
  fi
done
