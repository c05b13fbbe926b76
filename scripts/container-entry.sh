#!/usr/bin/env bash
# Entry point of the bnn2fpga image: find the mounted Xilinx tools, then run the command.
# The tools come from the host through these variables (scripts/docker.sh sets them):
#   XILINX_VIVADO  e.g. /tools/Xilinx/Vivado/2024.2      (required for bitstreams)
#   XILINX_HLS     e.g. /tools/Xilinx/Vitis_HLS/2023.2   (Vivado <= 2024.1)
#   XILINX_VITIS   e.g. /tools/Xilinx/Vitis/2024.2       (Vivado >= 2024.2: vitis-run)
set -euo pipefail
mkdir -p "$HOME" "${FINN_BUILD_DIR:-/tmp/finn_build}"

missing=()
if [ -n "${XILINX_VIVADO:-}" ]; then
  if [ -f "$XILINX_VIVADO/settings64.sh" ]; then
    # settings64.sh reads unset variables; it is Xilinx's script, not ours.
    set +u
    # shellcheck disable=SC1091
    source "$XILINX_VIVADO/settings64.sh" >/dev/null
    set -u
  else
    missing+=("Vivado: XILINX_VIVADO=$XILINX_VIVADO has no settings64.sh (is the folder mounted?)")
  fi
else
  missing+=("Vivado: XILINX_VIVADO is not set (mount your Vivado and set it)")
fi
hls_ok=0
for root in "${XILINX_HLS:-}" "${XILINX_VITIS:-}"; do
  if [ -n "$root" ] && { [ -x "$root/bin/vitis_hls" ] || [ -x "$root/bin/vitis-run" ]; }; then
    hls_ok=1
    export PATH="$root/bin:$PATH"
  fi
done
[ "$hls_ok" = 1 ] || missing+=("Vitis HLS (only for designs with HLS layers: --layers finn or --binary-mvau hls): set XILINX_HLS (Vitis_HLS/<version>) or XILINX_VITIS (Vitis/<version>) to a mounted install")
if [ -n "${FINN_DEPS:-}" ] && [ ! -d "$FINN_DEPS/board_files" ]; then
  missing+=("board files: none under $FINN_DEPS (image built with FETCH_FINN_DEPS=0); mount the output of 'finn deps update' there (FINN_DEPS_PATH)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "bnn2fpga image: missing for bitstreams (Vivado-free steps still run, bitstream steps will stop):" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
fi
# The image's editable install points at /work, so a checkout mounted there is what runs.
# Its package layout and pins are the image's: say so when the checkout has moved on.
stamp=/usr/local/share/bnn2fpga/install-inputs.sha256
if [ -f "$stamp" ] && [ -f /work/pyproject.toml ] \
   && [ "$(cat /work/pyproject.toml /work/requirements/*.txt 2>/dev/null | sha256sum | cut -d' ' -f1)" != "$(cat "$stamp")" ]; then
  echo "bnn2fpga image: /work's pyproject.toml or requirements/ differ from the image's; rebuild it (make docker-image)" >&2
fi
exec "$@"
