# syntax=docker/dockerfile:1.7
# gh-elt's Lambda image: the ingest, transform and compact binaries on Lambda's OS-only base
# image (provided.al2023). One image serves every function; each function's
# ImageConfig.EntryPoint picks its binary. Lambda takes single-architecture images, so build one
# per architecture:
#
#   docker buildx build --platform linux/arm64 --provenance=false -t gh-elt:arm64 --load .
#   docker buildx build --platform linux/amd64 --provenance=false -t gh-elt:x86_64 --load .
#
# docker_build.sh does this, pushes the image to ECR and updates the functions.
# Try it locally with the runtime interface emulator in the base image:
#   docker run --rm -p 9000:8080 --entrypoint /usr/local/bin/aws-lambda-rie gh-elt:x86_64 /var/task/transform

# Base images pinned by digest (the multi-architecture index), so a build uses the bytes it was
# tested with. The Rust image's tag matches rust-toolchain.toml. Refresh both with
# infra/pin-base-images.sh on a machine that reaches the registries.
ARG RUST_IMAGE=public.ecr.aws/docker/library/rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG LAMBDA_BASE_IMAGE=public.ecr.aws/lambda/provided:al2023@sha256:5f3ae3216e07bb3677cc4dfa0c7867973f7e536abb114d6b44a7b8c558824812

# The build runs natively on the build machine and cross-compiles with cargo-lambda (Zig as the
# linker, against a glibc old enough for Amazon Linux 2023), so an arm64 image builds as fast as
# an x86_64 one, without emulation.
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
# The pair the project builds with (cargo-lambda's own pin on Zig is open-ended).
ARG CARGO_LAMBDA_VERSION=1.9.2
ARG ZIG_VERSION=0.17.1
# make: jemalloc's build (tikv-jemalloc-sys runs its configure script, then make).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv ca-certificates make \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/cargo-lambda \
    && /opt/cargo-lambda/bin/pip install --no-cache-dir \
       "cargo-lambda==${CARGO_LAMBDA_VERSION}" "ziglang==${ZIG_VERSION}"
ENV PATH=/opt/cargo-lambda/bin:$PATH
WORKDIR /src
# The pinned toolchain and both Lambda targets in a layer of their own, reused across builds.
COPY rust-toolchain.toml .
RUN rustup toolchain install \
    && rustup target add aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu
COPY . .
# The `lambda` profile: fat LTO, one codegen unit, stripped (Cargo.toml). `--package transform`
# builds every binary of the package: `transform` and `compact` (transform/src/bin/compact.rs).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=gh-elt-target-${TARGETARCH} \
    case "${TARGETARCH}" in \
      amd64) target=--x86-64 ;; \
      arm64) target=--arm64 ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
    && cargo lambda build --locked --profile lambda "${target}" --package ingest --package transform \
    && mkdir -p /out \
    && cp target/lambda/ingest/bootstrap /out/ingest \
    && cp target/lambda/transform/bootstrap /out/transform \
    && cp target/lambda/compact/bootstrap /out/compact

FROM ${LAMBDA_BASE_IMAGE}
COPY --from=build /out/ingest /out/transform /out/compact /var/task/
ENTRYPOINT ["/var/task/transform"]
