#!/usr/bin/env bash
# Builds the oxinfer container image with podman and smoke-runs it: waits for /v2/health/ready, makes one infer call
# on the bundled iris model, runs the image's HEALTHCHECK, stops it with SIGTERM, and checks and reports the numbers
# in one line, `container-summary: key=value ...` (image size, time to ready, user, health, SIGTERM exit, builder
# images left). Budgets: image <= 60 MB, ready <= 10 s, uid/gid 65532, healthy, SIGTERM exit 0 within 10 s, no image
# of the builder stage left.
#
# Base images cannot be pulled here, so local stand-ins are built under the Dockerfile's names
#   docker.io/library/rust:1-bookworm      debootstrap --variant=minbase bookworm (+ gcc, libc6-dev) + this host's
#                                          Rust toolchain (rustup proxies in /usr/local/cargo/bin, as in the real one)
#   gcr.io/distroless/base-nossl-debian12:nonroot
#                                          scratch image: the files of bookworm's libc6, netbase, tzdata; the CA
#                                          bundle; passwd/group with root, nobody and nonroot (65532); USER 65532
#                                          (as distroless does)
# then `podman build --pull=never --network none --format docker --layers=false` with this host's cargo registry
# mounted read-only. --format docker keeps the HEALTHCHECK (podman's default OCI format drops it); --layers=false and
# the removal of images labelled org.oxinfer.stage=builder leave no builder-stage image (~1 GB) behind, and the
# image the tag pointed to before is removed. Kept on purpose: the stand-ins (built once, in podman's store, and
# debootstrap's tree under $OXINFER_STANDINS_DIR; ~1.1 GB and ~0.5 GB) and buildah's cache of the cargo target
# folder (/var/tmp/buildah-cache/src/target, ~0.5 GB; rebuilds in minutes instead of ~17 on two busy cores). To reclaim
# them: podman rmi docker.io/library/rust:1-bookworm gcr.io/distroless/base-nossl-debian12:{nonroot,latest};
# rm -rf $OXINFER_STANDINS_DIR /var/tmp/buildah-cache/src/target.
#
# Needs root (debootstrap, chroot, rootful podman) on Debian/Ubuntu; installs podman, runc, debootstrap, curl and jq
# with apt (after apt-get update) when they are missing. What is fetched, and only when not already here: those
# packages and bookworm's (deb.debian.org, or $DEBIAN_MIRROR for debootstrap), the pinned onnxruntime wheel from PyPI
# (scripts/provision-ort.sh, into .ort/). The crates must already be in $CARGO_HOME/registry (cargo fetch --locked);
# the build itself runs without network.
#
# Env: OXINFER_IMAGE (default localhost/oxinfer:dev), OXINFER_STANDINS_DIR (default /var/tmp/oxinfer-standins),
#      OXINFER_SMOKE_PORT (default 18080; gRPC on +1, metrics on +2), OXINFER_REBUILD_STANDINS=1 to rebuild them,
#      CARGO_HOME (default ~/.cargo: its registry/ is mounted), DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Usage: scripts/container.sh [build|smoke|all]   (default all)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHAT="${1:-all}"
IMAGE="${OXINFER_IMAGE:-localhost/oxinfer:dev}"
STANDINS="${OXINFER_STANDINS_DIR:-/var/tmp/oxinfer-standins}"
PORT="${OXINFER_SMOKE_PORT:-18080}"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BUILDER_IMAGE="docker.io/library/rust:1-bookworm"
RUNTIME_IMAGE="gcr.io/distroless/base-nossl-debian12:nonroot"
NAME="oxinfer-smoke-$$"
STAGE_LABEL="org.oxinfer.stage=builder"
BUILD_S=""

log() { echo "container: $*" >&2; }
die() { log "$*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root (debootstrap, chroot and rootful podman)"
missing=()
for tool in podman runc debootstrap curl jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt"
  # The package lists may be empty (fresh containers and cloud images ship without them).
  DEBIAN_FRONTEND=noninteractive apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# podman settings for this machine, without touching /etc: runc (crun fails on mixed cgroup hierarchies) and
# ulimits within the hard limits (podman's defaults exceed them).
mkdir -p "$STANDINS"
export CONTAINERS_CONF="$STANDINS/containers.conf"
cat > "$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF

debootstrap_tree() {
  local tree="$STANDINS/bookworm"
  if [[ ! -f "$tree/.complete" ]]; then
    log "debootstrap bookworm (minbase + gcc, libc6-dev, tzdata) into $tree"
    rm -rf "$tree"
    debootstrap --variant=minbase \
      --include=gcc,libc6-dev,libstdc++6,pkg-config,make,ca-certificates,netbase,tzdata \
      bookworm "$tree" "$MIRROR" >&2
    touch "$tree/.complete"
  fi
  echo "$tree"
}

build_builder_standin() {
  local tree sysroot stage
  tree="$(debootstrap_tree)"
  sysroot="$(rustc --print sysroot)"
  [[ -x "$sysroot/bin/cargo" ]] || die "the host's Rust toolchain ($sysroot) has no cargo"
  [[ -x "$CARGO_HOME/bin/rustup" ]] || die "no rustup in $CARGO_HOME/bin"
  stage="$STANDINS/builder-overlay"
  rm -rf "$stage"
  mkdir -p "$stage/usr/local/rustup/toolchains" "$stage/usr/local/cargo/bin"
  log "builder stand-in: $tree + toolchain $sysroot ($(rustc -V))"
  # The toolchain without its HTML docs (share/doc), as the real image's minimal profile has none either.
  tar -C "$sysroot" --exclude=./share/doc -cf - . \
    | tar -C "$stage/usr/local/rustup/toolchains" --one-top-level=stable-x86_64-unknown-linux-gnu -xf -
  printf 'version = "12"\ndefault_toolchain = "stable-x86_64-unknown-linux-gnu"\nprofile = "minimal"\n' \
    > "$stage/usr/local/rustup/settings.toml"
  cp "$CARGO_HOME/bin/rustup" "$stage/usr/local/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc rust-gdb rust-lldb; do ln -s rustup "$stage/usr/local/cargo/bin/$proxy"; done
  chmod -R a+rX,go-w "$stage/usr/local"
  # podman import refuses duplicate paths: add only what the tree lacks (no --exclude: it would apply to both).
  tar --numeric-owner -C "$tree" --exclude=./.complete -cf - . -C "$stage" ./usr/local/rustup ./usr/local/cargo \
    | podman import \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        - "$BUILDER_IMAGE" >/dev/null
  rm -rf "$stage"
}

build_runtime_standin() {
  local tree stage list
  tree="$(debootstrap_tree)"
  stage="$STANDINS/runtime-root"
  list="$STANDINS/runtime-files.txt"
  rm -rf "$stage"
  mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{etc/ssl/certs,tmp,home/nonroot,root,var/lib}
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$stage/$d"; done   # merged /usr, as bookworm
  log "runtime stand-in: files of libc6 netbase tzdata from $tree"
  chroot "$tree" dpkg -L libc6 netbase tzdata \
    | grep -v -E '^/usr/share/(doc|man|lintian|locale|bug|info)(/|$)' | grep -v '^/\.$' | sort -u > "$list"
  tar -C "$tree" --no-recursion -cf - -T <(sed 's|^/|./|' "$list") 2>/dev/null \
    | tar -C "$stage" --keep-directory-symlink -xf -
  cp "$tree/etc/ssl/certs/ca-certificates.crt" "$stage/etc/ssl/certs/ca-certificates.crt"
  cat > "$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat > "$stage/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
  printf 'hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n' > "$stage/etc/nsswitch.conf"
  chmod 1777 "$stage/tmp"
  chown 65532:65532 "$stage/home/nonroot"
  chmod 700 "$stage/root"
  tar --numeric-owner -C "$stage" -cf - . \
    | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'USER 65532' \
        --change 'WORKDIR /home/nonroot' \
        - "$RUNTIME_IMAGE" >/dev/null
  podman tag "$RUNTIME_IMAGE" gcr.io/distroless/base-nossl-debian12:latest
  rm -rf "$stage"
}

build() {
  bash scripts/provision-ort.sh
  [[ -d "$CARGO_HOME/registry" ]] || die "no cargo registry at $CARGO_HOME/registry (run cargo fetch --locked once)"
  if [[ "${OXINFER_REBUILD_STANDINS:-0}" == 1 ]]; then
    podman rmi -f "$BUILDER_IMAGE" "$RUNTIME_IMAGE" gcr.io/distroless/base-nossl-debian12:latest >/dev/null 2>&1 || true
  fi
  podman image exists "$BUILDER_IMAGE" || build_builder_standin
  podman image exists "$RUNTIME_IMAGE" || build_runtime_standin
  log "podman build $IMAGE (offline, docker format, registry $CARGO_HOME/registry mounted read-only)"
  local t0=$SECONDS before
  before=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  podman build --pull=never --network none --format docker --layers=false \
    --volume "$CARGO_HOME/registry:/usr/local/cargo/registry:ro" \
    --build-arg CARGO_NET_OFFLINE=true \
    --tag "$IMAGE" . >&2
  BUILD_S=$((SECONDS - t0))
  log "built $IMAGE in $BUILD_S s"
  remove_leftovers "$before"
}

# Removes what a build leaves: images of the builder stage (by label) and the image the tag pointed to before.
remove_leftovers() {
  local before="$1" now ids
  ids=$(podman images --all --quiet --no-trunc --filter "label=$STAGE_LABEL")
  if [[ -n "$ids" ]]; then
    log "removing builder-stage images: $(tr '\n' ' ' <<<"$ids")"
    # shellcheck disable=SC2086
    podman rmi -f $ids >/dev/null
  fi
  now=$(podman image inspect --format '{{.Id}}' "$IMAGE")
  if [[ -n "$before" && "$before" != "$now" ]] && podman image exists "$before"; then
    log "removing the previous $IMAGE (${before:0:12})"
    podman rmi "$before" >/dev/null || log "kept ${before:0:12}: still in use"
  fi
}

# podman's complaints that it cannot (un)schedule health checks without systemd (stderr filter).
no_systemd_noise() { grep -v 'unable to get systemd connection' >&2 || true; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

smoke() {
  podman image exists "$IMAGE" || die "no image $IMAGE (run: $0 build)"
  local http=$PORT grpc=$((PORT + 1)) metrics=$((PORT + 2)) base="http://127.0.0.1:$PORT"
  if curl -s -o /dev/null --max-time 1 "$base/v2/health/live"; then
    die "something already answers on port $http; set OXINFER_SMOKE_PORT"
  fi
  local size image_user
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  image_user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
  echo "image:        $IMAGE, $size bytes ($((size / 1000000)) MB), user $image_user"
  podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q oxinfer \
    || die "the image has no HEALTHCHECK (built in OCI format? use podman build --format docker)"
  trap 'podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true' EXIT
  # Without systemd podman cannot schedule the periodic check (it logs errors): run it only on demand below.
  local hc_opts=()
  [[ -d /run/systemd/system ]] || hc_opts=(--health-interval disable)
  local start code body
  start=$(date +%s%N)
  # Ports by environment, not flags, so that the image's HEALTHCHECK (oxinfer health) finds the server.
  podman run -d --name "$NAME" --network host --read-only "${hc_opts[@]}" \
    --volume "$ROOT/model-repository:/mnt/models:ro" \
    -e MLSERVER_HTTP_PORT="$http" -e MLSERVER_GRPC_PORT="$grpc" -e MLSERVER_METRICS_PORT="$metrics" \
    "$IMAGE" >/dev/null
  code=000
  for _ in $(seq 1 600); do   # 60 s at most
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$base/v2/health/ready" || true)
    [[ "$code" == 200 ]] && break
    if [[ "$(podman inspect --format '{{.State.Running}}' "$NAME")" != true ]]; then
      podman logs "$NAME" >&2 || true
      die "the container stopped before it was ready"
    fi
    sleep 0.1
  done
  local ready_ms
  ready_ms=$(ms_since "$start")
  if [[ "$code" != 200 ]]; then
    podman logs "$NAME" >&2 || true
    die "not ready after 60 s (last answer $code)"
  fi
  echo "ready:        $(curl -s "$base/v2/health/ready") in ${ready_ms} ms (podman run to the first 200 of /v2/health/ready)"
  local pid uid gid
  pid=$(podman inspect --format '{{.State.Pid}}' "$NAME")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  gid=$(awk '/^Gid:/ {print $2}' "/proc/$pid/status")
  echo "process:      uid $uid gid $gid: $(tr '\0' ' ' < "/proc/$pid/cmdline")"
  body=$(curl -s --max-time 10 -H 'Content-Type: application/json' "$base/v2/models/iris/infer" \
    -d '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[6.7,3.0,5.2,2.3]}]}')
  echo "infer iris:   $body"
  local label
  label=$(jq -c '.outputs[] | select(.name == "label") | .data' <<<"$body")
  [[ "$label" == "[2]" ]] || die "expected label [2] from iris, got ${label:-nothing}"
  # The HEALTHCHECK as podman runs it (exec of `oxinfer health` in the container), then the recorded status.
  local hc_out hc_rc=0 health
  hc_out=$(podman healthcheck run "$NAME" 2>&1) || hc_rc=$?
  health=$(podman inspect "$NAME" | jq -r '.[0].State.Health.Status // .[0].State.Healthcheck.Status // "none"')
  echo "healthcheck:  podman healthcheck run: exit $hc_rc${hc_out:+ ($hc_out)}; status $health"
  # SIGTERM (what Kubernetes and podman stop send) to the exit of the server, with its exit code.
  local t_term exit_code sigterm_ms
  t_term=$(date +%s%N)
  podman kill --signal TERM "$NAME" >/dev/null 2> >(no_systemd_noise)
  exit_code=$(timeout 40 podman wait "$NAME" 2> >(no_systemd_noise) || echo timeout)
  sigterm_ms=$(ms_since "$t_term")
  echo "SIGTERM:      exit code $exit_code after ${sigterm_ms} ms"
  podman logs "$NAME" 2>&1 | tail -n 3 | sed 's/^/  log: /'
  podman rm -f -t 0 "$NAME" >/dev/null 2> >(no_systemd_noise)
  trap - EXIT
  local leftovers
  leftovers=$(podman images --all --quiet --filter "label=$STAGE_LABEL" | wc -l)
  echo "leftovers:    $leftovers image(s) of the builder stage; dangling: $(podman images --quiet --filter dangling=true | wc -l)"
  echo "container-summary: image_bytes=$size image_mb=$((size / 1000000)) ready_ms=$ready_ms uid=$uid gid=$gid" \
    "image_user=$image_user health=$health sigterm_exit=$exit_code sigterm_ms=$sigterm_ms" \
    "builder_images=$leftovers${BUILD_S:+ build_s=$BUILD_S}"
  local fail=()
  (( size <= 60000000 )) || fail+=("the image is over 60 MB")
  (( ready_ms <= 10000 )) || fail+=("ready after more than 10 s")
  [[ "$uid" == 65532 && "$gid" == 65532 ]] || fail+=("the server runs as $uid:$gid, not 65532:65532")
  [[ "$hc_rc" == 0 && "$health" == healthy ]] || fail+=("the health check did not pass (exit $hc_rc, status $health)")
  [[ "$exit_code" == 0 ]] || fail+=("SIGTERM: exit code $exit_code, not 0")
  (( sigterm_ms <= 10000 )) || fail+=("SIGTERM: exit after more than 10 s")
  (( leftovers == 0 )) || fail+=("$leftovers image(s) of the builder stage remain")
  if ((${#fail[@]})); then
    for f in "${fail[@]}"; do log "FAIL: $f"; done
    exit 1
  fi
  echo "smoke test passed"
}

case "$WHAT" in
  build) build ;;
  smoke) smoke ;;
  all) build; smoke ;;
  *) die "usage: $0 [build|smoke|all]" ;;
esac
