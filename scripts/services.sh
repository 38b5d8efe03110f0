# shellcheck shell=bash
# The private services scripts/test and scripts/bench run against, in one place: sourced, not run.
#
# The caller sets `root` (the checkout) and `tag` (its log prefix), then calls, in this order:
#   cl_packages PKG...   install what is missing (Debian package names), when run as root
#   cl_venv              .venv with the package and its dev extras; sets `py`
#   cl_workdir NAME      a temporary folder for everything below, removed (processes stopped by
#                        pid) on exit, whatever the exit status
#   cl_engine [tls]      a private dockerd unless CONTAINERLEASE_DOCKER_URL answers
#   cl_redis [tls]       a private redis-server unless CONTAINERLEASE_REDIS_URL answers
#   cl_test_image        the offline busybox image, through the engine's image-import API
#   cl_channel_image     that image with Python and the channel responder (the channel tests)
#   cl_registry          a private docker-registry with a variant of it (only next to our engine)

log() { printf '[%s] %s\n' "$tag" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# Which command each package brings (busybox-static: a static /bin/busybox, checked apart).
declare -A _cl_command=(
  [docker.io]=dockerd [redis-server]=redis-server [curl]=curl [tmux]=tmux
  [docker-registry]=docker-registry [openssl]=openssl
)

cl_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if [ "$pkg" = busybox-static ]; then
      # (ldd exits 1 for a static binary, so its output is captured rather than piped)
      [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 \
        && grep -q 'not a dynamic' <<<"$(LC_ALL=C ldd /bin/busybox 2>&1 || true)" \
        || missing+=("$pkg")
    else
      command -v "${_cl_command[$pkg]:-$pkg}" >/dev/null || missing+=("$pkg")
    fi
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "missing ${missing[*]} and not root: install them, or point CONTAINERLEASE_DOCKER_URL/REDIS_URL at running services"
  fi
}

cl_venv() {
  local venv=${CONTAINERLEASE_VENV:-$root/.venv} stamp
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
  fi
  stamp="$venv/.installed-$(sha1sum "$root/pyproject.toml" | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    log "installing the package and its test dependencies"
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$root[dev]"
    touch "$stamp"
  fi
  py="$venv/bin/python"
}

pids=()
own_engine=0
_cl_cleanup() {
  local rc=$? pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # Overlay mounts of a stopped engine are gone; what is left is plain files.
  grep -o " $work[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
  exit "$rc"
}

cl_workdir() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$work" # other test users must reach the engine socket inside
  trap _cl_cleanup EXIT
  trap 'exit 130' INT TERM
}

docker_ping() { # $1 = url
  case "$1" in
    unix://*) curl -sf --max-time 2 --unix-socket "${1#unix://}" http://docker/_ping >/dev/null ;;
    tcp://*) curl -sf --max-time 2 "http://${1#tcp://}/_ping" >/dev/null ;;
    *) return 1 ;;
  esac
}
docker_api() { # $1 = url, rest = curl args with a path starting at /
  local url=$1
  shift
  case "$url" in
    unix://*) curl -sS --unix-socket "${url#unix://}" "${@:1:$#-1}" "http://docker${!#}" ;;
    tcp://*) curl -sS "${@:1:$#-1}" "http://${url#tcp://}${!#}" ;;
  esac
}
redis_ping() {
  "$py" - "$1" <<'EOF'
import sys, redis
try:
    sys.exit(0 if redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping() else 1)
except Exception:
    sys.exit(1)
EOF
}
registry_ping() { curl -sf --max-time 2 "http://$1/v2/" >/dev/null; }
wait_for() { # $1 = what, $2 = seconds, rest = command
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    # Return rather than die: the caller shows the log before cleanup deletes it.
    ((SECONDS < deadline)) || { log "FAIL: $what did not answer within ${secs}s"; return 1; }
    sleep 0.2
  done
}
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A throwaway CA, a server certificate for 127.0.0.1 and a client certificate in $work/tls, for
# the transport tests (Docker over TCP with client certificates, Redis over TLS). Sets have_tls.
have_tls=0
cl_tls() {
  command -v openssl >/dev/null || return 0
  local d="$work/tls"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=containerlease test CA" \
      -keyout ca-key.pem -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile server.ext -out server-cert.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=client" -keyout key.pem -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile client.ext -out cert.pem
    chmod 644 ./*.pem
  ) >/dev/null 2>&1 && have_tls=1 && export CONTAINERLEASE_TEST_TLS_DIR="$d"
}

cl_engine() { # [tls]: also listen on loopback TCP with TLS client certificates
  if [ -n "${CONTAINERLEASE_DOCKER_URL:-}" ] && docker_ping "$CONTAINERLEASE_DOCKER_URL"; then
    log "using the Docker engine at $CONTAINERLEASE_DOCKER_URL"
    return 0
  fi
  own_engine=1
  command -v dockerd >/dev/null || die "dockerd is not installed"
  mkdir -p "$work/docker"
  export CONTAINERLEASE_DOCKER_URL="unix://$work/docker.sock"
  local tls_args=() dport
  if [ "${1:-}" = tls ] && ((have_tls)); then
    dport=$(free_port)
    tls_args=(--host "tcp://127.0.0.1:$dport" --tlsverify --tlscacert "$work/tls/ca.pem"
      --tlscert "$work/tls/server-cert.pem" --tlskey "$work/tls/server-key.pem")
    export CONTAINERLEASE_TEST_DOCKER_TLS_URL="tcp://127.0.0.1:$dport"
  fi
  dockerd --host "$CONTAINERLEASE_DOCKER_URL" "${tls_args[@]}" --data-root "$work/docker/data" \
    --exec-root "$work/docker/exec" --pidfile "$work/docker/docker.pid" \
    --bridge=none --iptables=false --ip6tables=false --log-level=warn \
    >"$work/dockerd.log" 2>&1 &
  pids+=($!)
  wait_for "dockerd" 60 docker_ping "$CONTAINERLEASE_DOCKER_URL" \
    || { tail -20 "$work/dockerd.log" >&2; exit 1; }
  log "private dockerd (pid ${pids[-1]}) at $CONTAINERLEASE_DOCKER_URL"
}

cl_redis() { # [tls]: also a TLS port
  if [ -n "${CONTAINERLEASE_REDIS_URL:-}" ] && redis_ping "$CONTAINERLEASE_REDIS_URL"; then
    log "using redis at $CONTAINERLEASE_REDIS_URL"
    return 0
  fi
  command -v redis-server >/dev/null || die "redis-server is not installed"
  local port tport redis_tls=()
  port=$(free_port)
  mkdir -p "$work/redis"
  if [ "${1:-}" = tls ] && ((have_tls)); then
    tport=$(free_port)
    redis_tls=(--tls-port "$tport" --tls-cert-file "$work/tls/server-cert.pem"
      --tls-key-file "$work/tls/server-key.pem" --tls-ca-cert-file "$work/tls/ca.pem"
      --tls-auth-clients no)
    export CONTAINERLEASE_TEST_REDIS_TLS_URL="rediss://127.0.0.1:$tport/0"
  fi
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no "${redis_tls[@]}" \
    --dir "$work/redis" --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
  pids+=($!)
  export CONTAINERLEASE_REDIS_URL="redis://127.0.0.1:$port/0"
  wait_for "redis-server" 30 redis_ping "$CONTAINERLEASE_REDIS_URL" \
    || { tail -20 "$work/redis.log" >&2; exit 1; }
  log "private redis-server (pid ${pids[-1]}) at $CONTAINERLEASE_REDIS_URL"
}

_cl_import() { # $1 = tar, $2 = repo:tag; through POST /images/create?fromSrc=-
  local out
  out=$(docker_api "$CONTAINERLEASE_DOCKER_URL" -X POST -H 'Content-Type: application/x-tar' \
    --data-binary "@$1" \
    "/images/create?fromSrc=-&repo=${2%:*}&tag=${2##*:}&changes=ENV%20PATH%3D%2Fbin")
  grep -q '"status":"sha256:' <<<"$out" || die "image import of $2 failed: $out"
}

cl_test_image() {
  export CONTAINERLEASE_TEST_IMAGE=${CONTAINERLEASE_TEST_IMAGE:-containerlease-test:busybox}
  local rootfs="$work/rootfs" applet
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/root"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -cf "$work/rootfs.tar" .
  if ! docker_api "$CONTAINERLEASE_DOCKER_URL" -f -o /dev/null "/images/$CONTAINERLEASE_TEST_IMAGE/json" 2>/dev/null; then
    _cl_import "$work/rootfs.tar" "$CONTAINERLEASE_TEST_IMAGE"
    log "imported $CONTAINERLEASE_TEST_IMAGE from busybox-static"
  fi
}

# The message channel's tests need a program in the container that listens on a unix socket:
# busybox cannot, so this image adds the machine's Python (the binary, its libraries and the
# standard library) and the documented responder, docs/examples/channel_responder.py.
cl_channel_image() {
  export CONTAINERLEASE_TEST_CHANNEL_IMAGE=${CONTAINERLEASE_TEST_CHANNEL_IMAGE:-containerlease-test:channel}
  local pyexe=/usr/bin/python3.11 rootfs="$work/channel-rootfs" lib
  if docker_api "$CONTAINERLEASE_DOCKER_URL" -f -o /dev/null "/images/$CONTAINERLEASE_TEST_CHANNEL_IMAGE/json" 2>/dev/null; then
    return 0
  fi
  [ -x "$pyexe" ] || die "$pyexe is missing: the channel test image needs it (apt-get install python3)"
  mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib" "$rootfs/run/containerlease"
  cp -a "$work/rootfs/." "$rootfs/"
  cp "$pyexe" "$rootfs/usr/bin/python3"
  for lib in $(ldd "$pyexe" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  tar -C /usr/lib -cf - --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
    --exclude=ensurepip --exclude=lib2to3 --exclude='config-*' --exclude=site-packages \
    --exclude=dist-packages python3.11 | tar -C "$rootfs/usr/lib" -xf -
  cp "$root/docs/examples/channel_responder.py" "$rootfs/responder.py"
  tar -C "$rootfs" -cf "$work/channel-rootfs.tar" .
  rm -rf "$rootfs"
  _cl_import "$work/channel-rootfs.tar" "$CONTAINERLEASE_TEST_CHANNEL_IMAGE"
  rm -f "$work/channel-rootfs.tar"
  log "imported $CONTAINERLEASE_TEST_CHANNEL_IMAGE (busybox, Python, the channel responder)"
}

# Docker trusts registries on 127.0.0.0/8 over plain HTTP. Only next to an engine of our own:
# with services given from outside, nothing is started and the pull tests skip.
cl_registry() {
  if [ -n "${CONTAINERLEASE_TEST_REGISTRY:-}" ] && registry_ping "$CONTAINERLEASE_TEST_REGISTRY"; then
    log "using the registry at $CONTAINERLEASE_TEST_REGISTRY"
    return 0
  fi
  if ! ((own_engine)) || ! command -v docker-registry >/dev/null; then
    log "no registry: the tests of real pulls will skip"
    return 0
  fi
  local rport out rootfs="$work/rootfs"
  rport=$(free_port)
  mkdir -p "$work/registry"
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
    "$work/registry" "$rport" >"$work/registry.yml"
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  pids+=($!)
  wait_for "docker-registry" 30 registry_ping "127.0.0.1:$rport" \
    || { tail -20 "$work/registry.log" >&2; exit 1; }
  export CONTAINERLEASE_TEST_REGISTRY="127.0.0.1:$rport"
  # Its own layer (busybox plus 4 MiB of noise), so a pull downloads real bytes.
  head -c $((4 << 20)) /dev/urandom >"$rootfs/payload"
  tar -C "$rootfs" -cf "$work/pull-rootfs.tar" .
  rm -f "$rootfs/payload"
  export CONTAINERLEASE_TEST_PULL_IMAGE="$CONTAINERLEASE_TEST_REGISTRY/$CONTAINERLEASE_TEST_IMAGE"
  _cl_import "$work/pull-rootfs.tar" "$CONTAINERLEASE_TEST_PULL_IMAGE"
  out=$(docker_api "$CONTAINERLEASE_DOCKER_URL" -X POST -H "X-Registry-Auth: $(printf '{}' | base64)" \
    "/images/${CONTAINERLEASE_TEST_PULL_IMAGE%:*}/push?tag=${CONTAINERLEASE_TEST_PULL_IMAGE##*:}")
  grep -q 'digest: sha256:' <<<"$out" || die "push to the private registry failed: $out"
  # Only the registry keeps it now: a test that provisions it pulls for real.
  docker_api "$CONTAINERLEASE_DOCKER_URL" -f -o /dev/null -X DELETE \
    "/images/$CONTAINERLEASE_TEST_PULL_IMAGE?force=1" || die "could not drop the pushed test image"
  log "private docker-registry (pid ${pids[-1]}) at $CONTAINERLEASE_TEST_REGISTRY with $CONTAINERLEASE_TEST_PULL_IMAGE"
}
