# Build environment for bnn2fpga bitstreams. Vivado and Vitis HLS are NOT in the image:
# mount your own installation (see README, "Building a PYNQ-Z2 bitstream"); scripts/docker.sh does it.
# Needs BuildKit (the default builder of Docker >= 23; `DOCKER_BUILDKIT=1` on 20.10): the CA
# bundle is a build secret and pip's download cache a cache mount, so neither lands in the image.
#
# Build arguments (scripts/docker.sh passes them from environment variables of the same name):
#   BASE_IMAGE       any Debian 12 (bookworm) image; without Python 3.11 + venv + headers they are
#                    installed from Debian. Default: the official Python image below.
#   TORCH_INDEX_URL  index for the torch step only, e.g. https://download.pytorch.org/whl/cpu
#   WHEELS_URL       extra wheels for pip (--find-links), e.g. a local CPU torch served over HTTP
#   FETCH_FINN_DEPS  1 (default): `finn deps update` fetches finn-hlslib and the board files
#                    (GitHub and TUL's download server); 0: skip, where those are out of reach.
# Secret: ca_bundle, a PEM bundle for pip/git behind a TLS-inspecting proxy (--secret id=ca_bundle,src=FILE).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG DEBIAN_FRONTEND=noninteractive
ARG FETCH_FINN_DEPS=1
# g++ and make: Verilator's rtlsim builds (hw/sim), FINN's XSI binding and HLS cppsim
# (both only with Vivado / finn-hlslib). perl: Verilator's `verilator` front end is a Perl
# script. The X/ncurses libraries and locale are what Vivado's Tcl shell loads even in batch
# mode. git/unzip/wget only to fetch FINN's dependencies (FETCH_FINN_DEPS=1). Python 3.11
# + venv + headers from Debian when the base lacks them (a plain Debian 12 base); the
# official Python image has them (the headers: FINN's XSI binding compiles against them).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++=4:12.2.* make=4.3-* perl=5.36.* ca-certificates=202* locales=2.36-* \
      libtinfo5=6.4-* libncurses5=6.4-* libx11-6=2:1.8.* libxext6=2:1.3.* libxrender1=1:0.9.* \
      libxtst6=2:1.2.* libglib2.0-0=2.74.* libgomp1=12.2.* \
 && if [ "$FETCH_FINN_DEPS" = 1 ]; then \
      apt-get install -y --no-install-recommends git=1:2.39.* unzip=6.0-* wget=1.21.*; fi \
 && if ! { command -v python3.11 >/dev/null \
           && python3.11 -c 'import ensurepip, venv, sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h")))'; }; then \
      apt-get install -y --no-install-recommends python3.11=3.11.2-* python3.11-venv=3.11.2-* python3.11-dev=3.11.2-*; fi \
 && sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8

# The same installer as `make setup` (pinned by requirements/constraints.txt), on the source
# at /work: the editable install then points at /work, where `docker run -v <checkout>:/work`
# puts your checkout, so the container runs your code (the image's copy only without a mount).
# Any source change redoes this layer (~1.5 min on the test machine; pip's downloads are cached).
WORKDIR /work
COPY . /work
ARG TORCH_INDEX_URL=""
ARG WHEELS_URL=""
# FINN's HLS library and board files at the commits finn-plus pins, under $FINN_DEPS, by
# FINN's own updater: `finn deps update` itself cannot run here, it first insists on
# Vivado's XSI (OSError "XILINX_VIVADO environment variable not set", finn-plus 1.6.1).
# FINN builds its XSI binding (for Vivado's simulator) inside its package folder at run
# time: that folder is writable for any user. cbcbox (the CBC solver under mip, which FINN's
# builder imports) ships a 365 MB debug build used only with CBCBOX_BUILD=debug: dropped.
ENV FINN_DEPS=/opt/finn-deps
RUN --mount=type=secret,id=ca_bundle \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca_bundle ]; then \
      export PIP_CERT=/run/secrets/ca_bundle GIT_SSL_CAINFO=/run/secrets/ca_bundle \
             SSL_CERT_FILE=/run/secrets/ca_bundle REQUESTS_CA_BUNDLE=/run/secrets/ca_bundle \
             WGETRC=/tmp/wgetrc \
      && echo "ca_certificate = /run/secrets/ca_bundle" > /tmp/wgetrc; fi \
 && if [ -n "$WHEELS_URL" ]; then export PIP_FIND_LINKS="$WHEELS_URL"; fi \
 && TORCH_INDEX_URL="$TORCH_INDEX_URL" scripts/install.sh /opt/venv \
 && if [ "$FETCH_FINN_DEPS" = 1 ]; then \
      /opt/venv/bin/python -c 'from pathlib import Path; import finn.interface as f; \
from finn.interface.manage_deps import DependencyUpdater as U; \
U(Path("/opt/finn-deps"), Path(f.__file__).parent / "external_dependencies.yaml", 600, non_interactive=True).update()' \
      && test -f /opt/finn-deps/finn-hlslib/mvau.hpp \
      || { echo "fetching FINN's dependencies failed: GitHub and TUL's download server must be reachable;" \
                "build with FETCH_FINN_DEPS=0 to skip them" >&2; exit 1; }; \
    else \
      mkdir -p /opt/finn-deps \
      && echo "FETCH_FINN_DEPS=0: no finn-hlslib or board files in this image (mount them, see README)"; fi \
 && rm -rf /tmp/wgetrc /opt/finn-deps/board_files_downloads \
            /opt/venv/lib/python3.11/site-packages/cbcbox/cbc_dist_debug_avx2 \
 && chmod -R a+rwX /opt/venv/lib/python3.11/site-packages/finn_xsi \
 && install -m 755 scripts/container-entry.sh /usr/local/bin/bnn2fpga-entry \
 && mkdir -p /usr/local/share/bnn2fpga \
 && cat pyproject.toml requirements/*.txt | sha256sum | cut -d' ' -f1 > /usr/local/share/bnn2fpga/install-inputs.sha256 \
 && useradd --create-home --uid 1000 builder

# Builds run as the calling user (docker run --user), so outputs on the mounted
# repository belong to them; this account is the fallback. VENV makes the Makefile's
# targets use the image's environment instead of a .venv in the mounted checkout.
USER builder
ENV VENV=/opt/venv PATH=/opt/venv/bin:$PATH HOME=/tmp/builder FINN_BUILD_DIR=/tmp/finn_build
ENTRYPOINT ["/usr/local/bin/bnn2fpga-entry"]
CMD ["bnn2fpga", "--help"]
