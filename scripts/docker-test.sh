#!/usr/bin/env bash
# make docker-test: build the image on this machine and run what a user runs in it, on a
# scratch copy of this checkout mounted at /work, as a non-root user:
#   make estimate MODEL=cbcnn               -> exit 0
#   bnn2fpga verify cbcnn-mnist --inputs 5  -> exit 0, bit-exact
#   make bitstream (via scripts/docker.sh)  -> stops before the first Xilinx step: bnn2fpga
#       exits 3 (make reports "Error 3" and itself exits 2) and the entry point names Vivado
# then checks that every file the container wrote belongs to that user.
# Not part of `make test`: a first build downloads ~1 GB and takes many minutes.
#
# Settings (environment, all optional):
#   IMAGE            tag to build (default bnn2fpga:test)
#   BASE_IMAGE       base image; default: the Dockerfile's when present or pullable, else a
#                    Debian 12 root file system made here with debootstrap (needs root and
#                    the debootstrap package), imported as bnn2fpga-base:bookworm
#   DEBIAN_MIRROR    mirror for debootstrap (default: this host's apt mirror, else deb.debian.org)
#   WHEELS_DIR       folder of wheels offered to the build's pip (default: this host's pip
#                    find-links folder, e.g. a CPU torch), served on 127.0.0.1 for the build
#   CA_BUNDLE        CAs for pip/git in the build (default: PIP_CERT, SSL_CERT_FILE or the system bundle)
#   FETCH_FINN_DEPS  1/0 (default: 1 when github.com answers, else 0)
#   TEST_USER        uid:gid in the container (default: the caller's; 4321:4321 when root)
#   KEEP=1           keep the scratch checkout
# Logs and a summary go to build/docker-test/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
image="${IMAGE:-bnn2fpga:test}"
logs="$repo/build/docker-test"
mkdir -p "$logs"
say() { echo "docker-test: $*" | tee -a "$logs/summary.txt"; }
: > "$logs/summary.txt"
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c"; done' EXIT

# --- 1. engine ---------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null 2>&1; then
    say "no Docker engine running; starting dockerd ${DOCKERD_ARGS:---storage-driver=vfs} (log /tmp/dockerd.log), left running"
    # shellcheck disable=SC2086
    setsid nohup dockerd ${DOCKERD_ARGS:---storage-driver=vfs} >/tmp/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "docker-test: no Docker engine is running and none could be started here (needs root and dockerd)" >&2
    exit 3
  fi
fi

# --- 2. base image -----------------------------------------------------------------------
debian_mirror() {
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
       | grep -v '^ *#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)"
  echo "${m%/}"
}

make_debian_base() {
  local tag="$1" mirror root
  command -v debootstrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || {
    echo "docker-test: the default base cannot be pulled and debootstrap (as root) is not available; set BASE_IMAGE" >&2
    exit 3; }
  mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"; mirror="${mirror:-http://deb.debian.org/debian}"
  root="$(mktemp -d /var/tmp/bnn2fpga-rootfs.XXXXXX)"
  say "building base $tag: debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 \
    || { tail -20 "$logs/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
  # Like Debian's official bookworm(-slim) images: updates and security suites, no docs/man pages.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "$mirror" "$mirror" "$mirror" > "$root/etc/apt/sources.list"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    'path-include /usr/share/locale/locale.alias' > "$root/etc/dpkg/dpkg.cfg.d/docker"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  chmod 755 "$root"  # mktemp made it 0700, and it becomes the image's /
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$tag" >/dev/null
  rm -rf "$root"
}

base="${BASE_IMAGE:-}"
if [ -z "$base" ]; then
  default="$(sed -n 's/^ARG BASE_IMAGE=//p' "$repo/Dockerfile")"
  if docker image inspect "$default" >/dev/null 2>&1 || timeout 120 docker pull -q "$default" >/dev/null 2>&1; then
    base="$default"
  else
    base=bnn2fpga-base:bookworm
    say "$default cannot be pulled here; base: $base (Debian 12 via debootstrap)"
    docker image inspect "$base" >/dev/null 2>&1 || make_debian_base "$base"
  fi
fi

# --- 3. what the build may use: local wheels, the host's CAs, GitHub ---------------------
build_env=(BASE_IMAGE="$base")
wheels="${WHEELS_DIR-}"
if [ -z "${WHEELS_DIR+x}" ] && [ -d "${PIP_FIND_LINKS:-}" ]; then wheels="$PIP_FIND_LINKS"; fi
if [ -n "$wheels" ]; then
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$port" >"$logs/wheels-http.log" 2>&1 &
  cleanup+=("kill $! 2>/dev/null || true")
  build_env+=(WHEELS_URL="http://127.0.0.1:$port/" DOCKER_NETWORK=host)
  say "wheels offered to the build: $wheels ($(ls "$wheels" | tr '\n' ' ')) at http://127.0.0.1:$port/"
fi
ca="${CA_BUNDLE-}"
if [ -z "${CA_BUNDLE+x}" ]; then
  for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$f" ] && [ -r "$f" ]; then ca="$f"; break; fi
  done
fi
[ -n "$ca" ] && build_env+=(CA_BUNDLE="$ca")
fetch="${FETCH_FINN_DEPS:-}"
if [ -z "$fetch" ]; then
  if timeout 5 bash -c 'exec 3<>/dev/tcp/github.com/443' 2>/dev/null; then fetch=1; else
    fetch=0
    say "github.com is out of reach: FETCH_FINN_DEPS=0 (no finn-hlslib or board files in the image)"
  fi
fi
build_env+=(FETCH_FINN_DEPS="$fetch")

# --- 4. build ----------------------------------------------------------------------------
say "building $image: ${build_env[*]} (log $logs/build.log)"
t0=$(date +%s)
if ! env "${build_env[@]}" "$repo/scripts/docker.sh" image "$image" >"$logs/build.log" 2>&1; then
  tail -40 "$logs/build.log" >&2
  say "FAIL: image build (see $logs/build.log)"
  exit 1
fi
build_s=$(( $(date +%s) - t0 ))
size=$(docker image inspect -f '{{.Size}}' "$image")
say "image $image built in ${build_s} s; size $(( size / 1000000 )) MB ($size bytes)"

# --- 5. the user's commands on a scratch copy of the checkout ----------------------------
if [ -n "${TEST_USER:-}" ]; then user="$TEST_USER"
elif [ "$(id -u)" = 0 ]; then user=4321:4321   # root owns everything anyway: test a real user
else user="$(id -u):$(id -g)"; fi
work="$(mktemp -d /tmp/bnn2fpga-docker-test.XXXXXX)"
[ "${KEEP:-0}" = 1 ] || cleanup+=("rm -rf '$work'")
tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='__pycache__' --exclude='*.egg-info' -cf - . \
  | tar -C "$work" -xf -
if [ "$(id -u)" = 0 ]; then chown -R "$user" "$work"; fi
say "checkout copy $work mounted at /work, container user $user"

fail=0
in_container() {  # name, expected exit code, command...
  local name="$1" want="$2" rc=0 t
  shift 2
  t=$(date +%s)
  docker run --rm --user "$user" -v "$work:/work" -w /work "$image" "$@" >"$logs/$name.log" 2>&1 || rc=$?
  say "$* -> exit $rc (want $want), $(( $(date +%s) - t )) s, log $logs/$name.log"
  [ "$rc" = "$want" ] || { fail=1; tail -20 "$logs/$name.log" >&2; }
}
expect_line() {  # log name, fixed string
  if grep -qF -- "$2" "$logs/$1.log"; then say "  $1: $(grep -F -- "$2" "$logs/$1.log" | head -1 | cut -c1-220)"
  else say "  FAIL $1: no line with '$2'"; fail=1; fi
}

in_container estimate 0 make estimate MODEL=cbcnn
expect_line estimate "estimate:"
in_container verify 0 bnn2fpga verify cbcnn-mnist --inputs 5
expect_line verify "verdict: bit-exact"

t=$(date +%s); rc=0
CHECKOUT="$work" DOCKER_USER="$user" "$repo/scripts/docker.sh" bitstream "$image" cbcnn pynq-z2 \
  >"$logs/bitstream.log" 2>&1 || rc=$?
say "make bitstream (scripts/docker.sh bitstream $image cbcnn pynq-z2) -> exit $rc (want 2 from make, 3 from bnn2fpga), $(( $(date +%s) - t )) s"
[ "$rc" = 2 ] || fail=1
expect_line bitstream "XILINX_VIVADO is not set"
expect_line bitstream "bnn2fpga: step"
expect_line bitstream "Error 3"

# --- 6. ownership of what the container wrote --------------------------------------------
n_build=$(find "$work/build" 2>/dev/null | wc -l)
others=$(find "$work" \( ! -uid "${user%%:*}" -o ! -gid "${user##*:}" \) | wc -l)
if [ "$others" = 0 ]; then say "ownership: all $n_build entries under build/ (and the whole copy) belong to $user"
else say "FAIL ownership: $others entries not owned by $user, e.g. $(find "$work" ! -uid "${user%%:*}" | head -3 | tr '\n' ' ')"; fail=1; fi

if [ "$fail" = 0 ]; then say "PASS"; else say "FAIL"; fi
exit "$fail"
