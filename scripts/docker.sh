#!/usr/bin/env bash
# make docker-image / make docker-bitstream (and scripts/docker-test.sh).
# Building the image (all optional):
#   BASE_IMAGE       base image (default in the Dockerfile: python:3.11.7-slim-bookworm)
#   TORCH_INDEX_URL  index for torch only, e.g. https://download.pytorch.org/whl/cpu (small image)
#   WHEELS_URL       extra wheels for pip (--find-links URL), e.g. a local CPU torch
#   FETCH_FINN_DEPS  0 to skip `finn deps update` (needs GitHub) at image build; default 1
#   CA_BUNDLE        PEM file of the CAs to trust (TLS-inspecting proxies); a build secret
#   DOCKER_NETWORK   network of the build's RUN steps, e.g. host
# Building a bitstream; Vivado comes from the host:
#   VIVADO_PATH   host folder of Vivado, e.g. /tools/Xilinx/Vivado/2024.2 (required for a bitstream)
#   HLS_PATH      host folder of Vitis HLS (<= 2024.1) or Vitis (>= 2024.2), e.g. /tools/Xilinx/Vitis/2024.2
#   FINN_DEPS_PATH  host folder from `finn deps update` (finn-hlslib, board_files), mounted over
#                   the image's /opt/finn-deps (for an image built with FETCH_FINN_DEPS=0)
#   XILINXD_LICENSE_FILE  passed through when set
#   CHECKOUT, DOCKER_USER  mounted checkout (default: this one) and uid:gid (default: yours)
# DRY_RUN=1 prints the docker command instead of running it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
what="${1:?usage: docker.sh image IMAGE | bitstream IMAGE MODEL BOARD [CKPT]}"
image="${2:-bnn2fpga:latest}"

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then printf '%q ' "$@"; echo; return 0; fi
  "$@"
}

need_engine() {
  [ "${DRY_RUN:-0}" = 1 ] && return 0
  if ! command -v docker >/dev/null 2>&1; then
    echo "docker: the docker command is not installed; install Docker Engine to $1" >&2; exit 3
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "docker: no Docker engine is running on this machine (docker info failed); start one to $1" >&2; exit 3
  fi
}

# A docker client that builds with BuildKit (the Dockerfile uses RUN --mount): one with the
# buildx plugin, or a 20.10-22.x client, which has BuildKit built in. Docker >= 23 without
# buildx cannot; another client on PATH (e.g. Debian's docker.io) may.
buildkit_docker() {
  local d v
  [ "${DRY_RUN:-0}" = 1 ] && { echo docker; return 0; }
  while read -r d; do
    if "$d" buildx version >/dev/null 2>&1; then echo "$d"; return 0; fi
    v="$("$d" version --format '{{.Client.Version}}' 2>/dev/null || true)"
    case "$v" in 18.09*|19.*|20.*|21.*|22.*) echo "$d"; return 0;; esac
  done < <(type -ap docker | awk '!seen[$0]++')
  echo "docker: building the image needs BuildKit: install the buildx plugin (package docker-buildx-plugin or docker-buildx)" >&2
  exit 3
}

case "$what" in
  image)
    need_engine "build the image"
    docker_cmd="$(buildkit_docker)"
    args=(--progress=plain -t "$image")
    for var in BASE_IMAGE TORCH_INDEX_URL WHEELS_URL FETCH_FINN_DEPS; do
      if [ -n "${!var:-}" ]; then args+=(--build-arg "$var=${!var}"); fi
    done
    if [ -n "${CA_BUNDLE:-}" ]; then
      [ -r "$CA_BUNDLE" ] || { echo "docker-image: CA_BUNDLE=$CA_BUNDLE is not a readable file" >&2; exit 2; }
      args+=(--secret "id=ca_bundle,src=$CA_BUNDLE")
    fi
    [ -n "${DOCKER_NETWORK:-}" ] && args+=(--network "$DOCKER_NETWORK")
    run env DOCKER_BUILDKIT=1 "$docker_cmd" build "${args[@]}" "$repo"
    ;;
  bitstream)
    model="${3:?MODEL is required}"; board="${4:?BOARD is required}"; ckpt="${5:-}"
    need_engine "build a bitstream"
    checkout="$(cd "${CHECKOUT:-$repo}" && pwd)"
    args=(--rm --user "${DOCKER_USER:-$(id -u):$(id -g)}" -v "$checkout:/work" -w /work)
    if [ -n "${VIVADO_PATH:-}" ]; then
      args+=(-v "$VIVADO_PATH:$VIVADO_PATH:ro" -e "XILINX_VIVADO=$VIVADO_PATH")
    else
      echo "docker-bitstream: VIVADO_PATH is not set; the container will stop after the Vivado-free steps" >&2
    fi
    if [ -n "${HLS_PATH:-}" ]; then
      var=XILINX_HLS; case "$HLS_PATH" in */Vitis/*) var=XILINX_VITIS;; esac
      args+=(-v "$HLS_PATH:$HLS_PATH:ro" -e "$var=$HLS_PATH")
    fi
    [ -n "${FINN_DEPS_PATH:-}" ] && args+=(-v "$(cd "$FINN_DEPS_PATH" && pwd):/opt/finn-deps:ro")
    [ -n "${XILINXD_LICENSE_FILE:-}" ] && args+=(-e "XILINXD_LICENSE_FILE=$XILINXD_LICENSE_FILE")
    run docker run "${args[@]}" "$image" \
      make bitstream VENV=/opt/venv MODEL="$model" BOARD="$board" ${ckpt:+CKPT="$ckpt"}
    ;;
  *)
    echo "docker.sh: unknown action '$what' (image or bitstream)" >&2; exit 2
    ;;
esac
