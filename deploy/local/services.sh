#!/usr/bin/env bash
# Make sure the services pushcore needs answer (PostgreSQL, Redis, and RabbitMQ for the
# multi-machine broker) and that the command-line tools its tests drive are installed
# (h2load from Debian's nghttp2-client, promtool from Debian's prometheus, chromium for the
# console's browser tests, npm for its assets, podman and debootstrap for the container image).
#
# Used by `make demo`, `make test` and CI.  A service that already answers at the configured
# URL is used as it is.  When nothing answers on a loopback address, a throwaway server is
# started from the installed binaries with its data under .local/ (installing Debian's
# package first when the binaries are missing).  Nothing here touches a remote host.
#
# Usage: deploy/local/services.sh [start|stop]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
DB_URL="${PUSHCORE_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/pushcore}"
REDIS_URL="${PUSHCORE_REDIS_URL:-redis://127.0.0.1:6379/0}"
AMQP_URL="${PUSHCORE_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/}"

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# host and port out of scheme://[user[:pw]@]host[:port][/...]
url_host() { local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; rest="${rest%%\?*}"; echo "${rest%%:*}"; }
url_port() {
  local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; rest="${rest%%\?*}"
  if [[ "$rest" == *:* ]]; then echo "${rest##*:}"; else echo "$2"; fi
}
is_loopback() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" || "$1" == "::1" ]]; }

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

apt_install() {
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d keeps the packages from starting their own services in containers.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL --------------------------------------------------------------------------
pg_answers() {
  local host=$1 port=$2
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$host" -p "$port" -t 2
  else
    tcp_open "$host" "$port"
  fi
}

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ensure_postgres() {
  local host port
  host=$(url_host "$DB_URL"); port=$(url_port "$DB_URL" 5432)
  if pg_answers "$host" "$port"; then log "PostgreSQL answers at $host:$port"; return; fi
  is_loopback "$host" || die "PostgreSQL at $host:$port does not answer (set PUSHCORE_DATABASE_URL)"
  local bindir; bindir=$(pg_bindir)
  if [[ -z "$bindir" ]]; then
    apt_install postgresql
    bindir=$(pg_bindir)
    [[ -n "$bindir" ]] || die "postgresql installed but no binaries under /usr/lib/postgresql"
    # The package may have started its own cluster on this port.
    if pg_answers "$host" "$port"; then log "PostgreSQL answers at $host:$port"; return; fi
  fi
  local data="$LOCAL/postgres/data"
  local -a run=()
  mkdir -p "$LOCAL/postgres"
  if [[ $EUID -eq 0 ]]; then
    # initdb refuses to run as root: the throwaway cluster belongs to the postgres user.
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$LOCAL/postgres" postgres
    chown -R postgres "$LOCAL/postgres"
    run=(runuser -u postgres --)
  else
    run=()
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initialising a throwaway PostgreSQL cluster in $data"
    "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  log "starting PostgreSQL on 127.0.0.1:$port (data in $data)"
  "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$LOCAL/postgres/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $LOCAL/postgres -c max_connections=200" start >/dev/null
  pg_answers "$host" "$port" || die "PostgreSQL did not come up; see $LOCAL/postgres/server.log"
}

stop_postgres() {
  local data="$LOCAL/postgres/data" bindir; bindir=$(pg_bindir)
  [[ -f "$data/postmaster.pid" && -n "$bindir" ]] || return 0
  local -a run=(); [[ $EUID -eq 0 ]] && run=(runuser -u postgres --)
  "${run[@]}" "$bindir/pg_ctl" -D "$data" -m fast stop >/dev/null || true
}

# --- Redis -------------------------------------------------------------------------------
redis_answers() {
  local host=$1 port=$2 reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port; printf 'PING\r\n' >&3; head -c 5 <&3" 2>/dev/null || true)
  [[ "$reply" == "+PONG" ]]
}

ensure_redis() {
  local host port
  host=$(url_host "$REDIS_URL"); port=$(url_port "$REDIS_URL" 6379)
  if redis_answers "$host" "$port"; then log "Redis answers at $host:$port"; return; fi
  is_loopback "$host" || die "Redis at $host:$port does not answer (set PUSHCORE_REDIS_URL)"
  command -v redis-server >/dev/null || apt_install redis-server
  if redis_answers "$host" "$port"; then log "Redis answers at $host:$port"; return; fi
  mkdir -p "$LOCAL/redis"
  log "starting Redis on 127.0.0.1:$port (data in $LOCAL/redis)"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save "" --appendonly no \
    --dir "$LOCAL/redis" --pidfile "$LOCAL/redis/redis.pid" --logfile "$LOCAL/redis/redis.log"
  for _ in $(seq 50); do redis_answers "$host" "$port" && return; sleep 0.1; done
  die "Redis did not come up; see $LOCAL/redis/redis.log"
}

stop_redis() {
  [[ -f "$LOCAL/redis/redis.pid" ]] || return 0
  kill "$(cat "$LOCAL/redis/redis.pid")" 2>/dev/null || true
  rm -f "$LOCAL/redis/redis.pid"
}

# --- RabbitMQ (the multi-machine broker; the tests run the demo campaign on it too) ------
ensure_rabbitmq() {
  local host port
  host=$(url_host "$AMQP_URL"); port=$(url_port "$AMQP_URL" 5672)
  if tcp_open "$host" "$port"; then log "RabbitMQ answers at $host:$port"; return; fi
  is_loopback "$host" || die "RabbitMQ at $host:$port does not answer (set PUSHCORE_RABBITMQ_URL)"
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  if tcp_open "$host" "$port"; then log "RabbitMQ answers at $host:$port"; return; fi
  mkdir -p "$LOCAL/rabbitmq/log" "$LOCAL/rabbitmq/mnesia"
  # Debian's rabbitmq-server script switches to the rabbitmq user when started as root.
  if [[ $EUID -eq 0 ]] && id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq "$LOCAL/rabbitmq"; fi
  log "starting RabbitMQ on 127.0.0.1:$port (data in $LOCAL/rabbitmq)"
  # Its own node name, data and log folders: nothing of a system-wide RabbitMQ is touched.
  # (Started as root, Debian's script switches user and drops RABBITMQ_NODE_PORT: as root
  # only the default port 5672 works, which is the one a missing RabbitMQ leaves free.)
  env RABBITMQ_NODENAME="pushcore@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$port" RABBITMQ_MNESIA_BASE="$LOCAL/rabbitmq/mnesia" \
    RABBITMQ_LOG_BASE="$LOCAL/rabbitmq/log" RABBITMQ_PID_FILE="$LOCAL/rabbitmq/rabbitmq.pid" \
    rabbitmq-server -detached
  for _ in $(seq 120); do tcp_open "$host" "$port" && return; sleep 0.5; done
  die "RabbitMQ did not come up; see $LOCAL/rabbitmq/log"
}

stop_rabbitmq() {
  [[ -f "$LOCAL/rabbitmq/rabbitmq.pid" ]] || return 0
  kill "$(cat "$LOCAL/rabbitmq/rabbitmq.pid")" 2>/dev/null || true
  rm -f "$LOCAL/rabbitmq/rabbitmq.pid"
}

# --- tools -------------------------------------------------------------------------------
ensure_tools() {
  local missing=()
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  command -v promtool >/dev/null || missing+=(prometheus)  # checks deploy/prometheus rules
  command -v systemd-analyze >/dev/null || missing+=(systemd)  # checks deploy/systemd units
  # the console: npm ci installs its browser assets; its browser tests drive Debian's
  # chromium (Playwright's own browser download is not used), with a font for its pages
  command -v npm >/dev/null || missing+=(npm)
  command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
  # The image tests (tests/deploy/test_image.py): podman with runc (crun refuses this kind
  # of machine's hybrid cgroups), slirp4netns for the containers' own network namespace,
  # netavark (+ aardvark-dns, iptables) for the build's, debootstrap for the base image.
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v slirp4netns >/dev/null || missing+=(slirp4netns)
  [[ -x /usr/lib/podman/netavark ]] || missing+=(netavark aardvark-dns)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
}

case "${1:-start}" in
  start) ensure_postgres; ensure_redis; ensure_rabbitmq; ensure_tools ;;
  stop) stop_rabbitmq; stop_redis; stop_postgres ;;
  *) die "usage: $0 [start|stop]" ;;
esac
