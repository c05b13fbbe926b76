#!/usr/bin/env bash
# make docker-image / make docker-bitstream. Vivado comes from the host:
#   VIVADO_PATH   host folder of Vivado, e.g. /tools/Xilinx/Vivado/2024.2 (required for a bitstream)
#   HLS_PATH      host folder of Vitis HLS (<= 2024.1) or Vitis (>= 2024.2), e.g. /tools/Xilinx/Vitis/2024.2
#   XILINXD_LICENSE_FILE  passed through when set
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

case "$what" in
  image)
    need_engine "build the image"
    run docker build ${TORCH_INDEX_URL:+--build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL"} -t "$image" "$repo"
    ;;
  bitstream)
    model="${3:?MODEL is required}"; board="${4:?BOARD is required}"; ckpt="${5:-}"
    need_engine "build a bitstream"
    args=(--rm --user "$(id -u):$(id -g)" -v "$repo:/work" -w /work)
    if [ -n "${VIVADO_PATH:-}" ]; then
      args+=(-v "$VIVADO_PATH:$VIVADO_PATH:ro" -e "XILINX_VIVADO=$VIVADO_PATH")
    else
      echo "docker-bitstream: VIVADO_PATH is not set; the container will stop after the Vivado-free steps" >&2
    fi
    if [ -n "${HLS_PATH:-}" ]; then
      var=XILINX_HLS; case "$HLS_PATH" in */Vitis/*) var=XILINX_VITIS;; esac
      args+=(-v "$HLS_PATH:$HLS_PATH:ro" -e "$var=$HLS_PATH")
    fi
    [ -n "${XILINXD_LICENSE_FILE:-}" ] && args+=(-e "XILINXD_LICENSE_FILE=$XILINXD_LICENSE_FILE")
    run docker run "${args[@]}" "$image" \
      make bitstream VENV=/opt/venv MODEL="$model" BOARD="$board" ${ckpt:+CKPT="$ckpt"}
    ;;
  *)
    echo "docker.sh: unknown action '$what' (image or bitstream)" >&2; exit 2
    ;;
esac
