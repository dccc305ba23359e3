# oxinfer container image: built on the official Rust image for Debian bookworm, run on distroless
# base-nossl-debian12 (glibc, CA certificates, tzdata; no shell, no package manager, no OpenSSL, which nothing here
# uses) plus the two C++ runtime libraries ONNX Runtime links (libstdc++, libgcc_s, copied from the bookworm
# builder), as the non-root user 65532.
#
# The ONNX Runtime library comes from the build context: run scripts/provision-ort.sh first (it fetches the pinned
# onnxruntime wheel from PyPI and checks its sha256), then
#     docker build -t oxinfer .
# Offline builds (as scripts/container.sh does with podman): mount a cargo registry that already holds the crates of
# Cargo.lock at /usr/local/cargo/registry and pass --build-arg CARGO_NET_OFFLINE=true.
#
# Run: the models folder is /mnt/models (KServe's storage initializer and Seldon's conventions); ports 8080 (REST),
# 8081 (gRPC), 8082 (Prometheus metrics). Any `oxinfer` arguments can replace the default `start /mnt/models`;
# set other ports with MLSERVER_HTTP_PORT / MLSERVER_GRPC_PORT rather than flags, so the HEALTHCHECK follows them:
#     docker run -p 8080:8080 -v "$PWD/model-repository:/mnt/models:ro" oxinfer
#     docker run -e MLSERVER_HTTP_PORT=9000 -e MLSERVER_GRPC_PORT=9500 oxinfer
# oxinfer writes no files, so a read-only root filesystem works (docker run --read-only, Kubernetes'
# readOnlyRootFilesystem: true).
#
# HEALTHCHECK is part of the Docker image format only: `docker build` keeps it; podman/buildah build OCI images by
# default, which have no such field and drop it, so build with `podman build --format docker` (container.sh does).
# Kubernetes ignores it either way and uses its probes on /v2/health/ready (k8s/).

FROM docker.io/library/rust:1-bookworm AS builder
# Marks any image left of this stage (buildah's intermediate images), so it can be found and removed.
LABEL org.oxinfer.stage=builder
ARG CARGO_NET_OFFLINE=false
ENV CARGO_NET_OFFLINE=${CARGO_NET_OFFLINE} \
    CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    RUSTFLAGS="-C link-arg=-Wl,-z,pack-relative-relocs"
# (Packed relative relocations, DT_RELR: glibc >= 2.36, as in bookworm; 0.2 MB less binary.)
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
# The target folder lives in a build cache (kept between builds by BuildKit and buildah), so the binary is copied
# out in the same step. /out/mnt/models becomes the (empty) mount point of the models folder.
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin oxinfer \
    && mkdir -p /out/mnt/models \
    && cp target/release/oxinfer /out/oxinfer

FROM gcr.io/distroless/base-nossl-debian12:nonroot
LABEL org.opencontainers.image.title="oxinfer" \
      org.opencontainers.image.description="Open Inference Protocol (KServe V2) server for ONNX models, drop-in for Seldon MLServer" \
      org.opencontainers.image.licenses="Apache-2.0"
# The library sits next to the binary, where oxinfer looks for it when neither --onnxruntime-lib nor
# ORT_DYLIB_PATH is given.
COPY --from=builder /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/
COPY --from=builder /out/oxinfer /opt/oxinfer/oxinfer
COPY .ort/libonnxruntime.so.1.31.1 /opt/oxinfer/libonnxruntime.so.1.31.1
COPY --from=builder --chown=65532:65532 /out/mnt/models /mnt/models
USER 65532:65532
WORKDIR /mnt/models
ENV MLSERVER_HOST=0.0.0.0
EXPOSE 8080 8081 8082
# Shell-less health check: `oxinfer health` GETs /v2/health/ready on MLSERVER_HTTP_PORT (8080) and exits 0 or 1.
# (Kept by docker build and podman build --format docker; Kubernetes uses its own probes, see k8s/.)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/opt/oxinfer/oxinfer", "health"]
ENTRYPOINT ["/opt/oxinfer/oxinfer"]
CMD ["start", "/mnt/models"]
