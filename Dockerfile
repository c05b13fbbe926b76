# Build environment for bnn2fpga bitstreams. Vivado and Vitis HLS are NOT in the image:
# mount your own installation (see README, "Building a bitstream"); scripts/docker.sh does it.
FROM python:3.11.7-slim-bookworm

ARG DEBIAN_FRONTEND=noninteractive
# Compilers for cppsim and Vivado's own helpers; the X/ncurses libraries Vivado's
# Tcl shell loads even in batch mode; git/unzip for FINN's pinned dependencies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential=12.9 git=1:2.39.* make=4.3-4.1 zip=3.0-13* unzip=6.0-28* \
      ca-certificates=20250419* locales=2.36-* libtinfo5=6.4-4 libncurses5=6.4-4 \
      libx11-6=2:1.8.4-* libxext6=2:1.3.4-* libxrender1=1:0.9.10-* libxtst6=2:1.2.3-* \
      libglib2.0-0=2.74.6-* libgomp1=12.2.0-* \
 && sed -i 's/# en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8

# The same installer as `make setup` (pinned by requirements/constraints.txt).
# TORCH_INDEX_URL may point pip at PyTorch's CPU wheel index to keep the image small.
ARG TORCH_INDEX_URL=""
WORKDIR /opt/bnn2fpga
COPY . /opt/bnn2fpga
RUN TORCH_INDEX_URL="${TORCH_INDEX_URL}" scripts/install.sh /opt/venv

# FINN's HLS library, board files and friends at the commits finn-plus pins.
ENV FINN_DEPS=/opt/finn-deps
RUN /opt/venv/bin/finn deps update --dependency-path /opt/finn-deps --batch \
 && test -f /opt/finn-deps/finn-hlslib/mvau.hpp

# Builds run as the calling user (docker run --user), so outputs on the mounted
# repository belong to them; this account is the fallback.
RUN useradd --create-home --uid 1000 builder \
 && mkdir -p /work && chown builder /work
USER builder
ENV PATH=/opt/venv/bin:$PATH HOME=/tmp/builder FINN_BUILD_DIR=/tmp/finn_build
WORKDIR /work
ENTRYPOINT ["/opt/bnn2fpga/scripts/container-entry.sh"]
CMD ["bnn2fpga", "--help"]
