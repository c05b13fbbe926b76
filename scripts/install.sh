#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment. Used by `make setup`
# and by the Dockerfile, so CI exercises exactly what the image runs.
#
# Usage: scripts/install.sh [VENV_DIR]   (default: .venv next to this repo)
# Idempotent: a stamp records the hash of every file that decides the install;
# when nothing changed the script exits in well under a second.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$repo/.venv}"
python="${PYTHON:-python3.11}"
stamp="$venv/.bnn2fpga-installed"

hash_inputs() {
  cat "$repo/scripts/install.sh" "$repo/requirements/requirements.txt" \
      "$repo/requirements/constraints.txt" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1
}
want="$(hash_inputs)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/bnn2fpga" ]; then
  echo "setup: $venv is up to date"
  exit 0
fi
if [ -x "$venv/bin/bnn2fpga" ] && [ ! -w "$venv" ]; then
  # The Docker image's environment, used by another user: it cannot change, use it as is.
  echo "setup: $venv is read-only here; using it as installed"
  exit 0
fi

command -v "$python" >/dev/null || { echo "setup: $python not found (Python 3.11 is required)" >&2; exit 1; }
echo "setup: installing into $venv (first run takes about 3 minutes and 2.3 GB)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q)

# 1. The CPU torch first: any later resolver step that sees no torch would pull a CUDA build.
# TORCH_INDEX_URL (optional) points this one step at another index, e.g. PyTorch's CPU wheels.
"${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
# 2. Everything else at the locked versions, with torch held where it is.
"${pip[@]}" -r "$repo/requirements/requirements.txt" -c "$repo/requirements/constraints.txt" torch==2.13.0
# 3. finn-plus last and without its pins (brevitas 0.13.0 breaks on torch 2.13, see
#    requirements.txt). Installed before step 2, its brevitas pin made pip print
#    "ERROR: pip's dependency resolver ..." during a setup that succeeds; pip checks no
#    conflicts for a --no-deps install, so the expected mismatch stays silent here.
"${pip[@]}" --no-deps finn-plus==1.6.1
# 4. The project itself, editable so `git pull` needs no reinstall.
"${pip[@]}" --no-deps -e "$repo"

echo "$want" > "$stamp"
echo "setup: done ($(du -sh "$venv" | cut -f1))"
