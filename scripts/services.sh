#!/usr/bin/env bash
# Makes PostgreSQL and Redis available for presave's tests, demo and
# development:
#   - reuses the ones already answering on DATABASE_URL / REDIS_URL;
#   - otherwise installs them from Debian's packages (when root and
#     missing) and starts project-local instances: data under .local/
#     (ignored by git), listening on loopback only, nothing kept for Redis.
# Also installs the tools the test suite drives when they are missing and
# we are root: pg_dump (with PostgreSQL), docker-compose (to validate
# compose.yaml), chromium and the fonts of the shipped languages' scripts
# (the browser tests measure and photograph the page in Arabic, Urdu and
# Japanese; without the glyphs Chromium draws empty boxes) and promtool
# (the alert rules).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
LOCAL="$ROOT/.local"
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}

log() { printf 'services: %s\n' "$*" >&2; }

# host and port of a URL like scheme://user@host:port/db?x
url_host() { local h=${1#*://}; h=${h#*@}; h=${h%%/*}; h=${h%%\?*}; printf '%s' "${h%:*}"; }
url_port() { local h=${1#*://}; h=${h#*@}; h=${h%%/*}; h=${h%%\?*}; [[ $h == *:* ]] && printf '%s' "${h##*:}" || printf '%s' "$2"; }
url_db() { local p=${1#*://}; p=${p#*/}; p=${p%%\?*}; printf '%s' "${p:-postgres}"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

APT_UPDATED=0
apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    log "need to install $* but not root: install them yourself (apt-get install $*)"
    return 1
  fi
  if [[ $APT_UPDATED -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "installing $* from Debian's packages"
  # policy-rc.d keeps the packages from starting system-wide services.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -n $d ]] && printf '%s' "$d"
}

ensure_postgres() {
  local host port db
  host=$(url_host "$DATABASE_URL"); port=$(url_port "$DATABASE_URL" 5432); db=$(url_db "$DATABASE_URL")
  if ! command -v psql >/dev/null || [[ -z $(pg_bin) ]]; then
    apt_install postgresql postgresql-client
  fi
  if psql "$DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    log "PostgreSQL answers on $host:$port/$db"
    return
  fi
  if port_open "$host" "$port"; then
    # A server answers but not to our URL: most likely the database is missing.
    if psql "${DATABASE_URL%/*}/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
      psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"$db\"" >/dev/null
      log "created database $db on $host:$port"
      return
    fi
    log "something listens on $host:$port but refuses $DATABASE_URL; fix DATABASE_URL"
    exit 1
  fi
  local bin data owner
  bin=$(pg_bin); data="$LOCAL/postgres"
  mkdir -p "$LOCAL"
  # initdb and postgres refuse to run as root: run them as the postgres user.
  if [[ $(id -u) -eq 0 ]]; then owner=postgres; else owner=$(id -un); fi
  as_owner() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  if [[ ! -f $data/PG_VERSION ]]; then
    log "initialising a project-local PostgreSQL in $data"
    mkdir -p "$data"; chown "$owner" "$data"; chmod 700 "$data"
    chmod o+x "$LOCAL" "$ROOT" 2>/dev/null || true
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  log "starting PostgreSQL on $host:$port"
  as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-c listen_addresses=$host -p $port -c unix_socket_directories=$data -c max_connections=300 -c fsync=off" start >/dev/null
  psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"$db\"" >/dev/null 2>&1 || true
  psql "$DATABASE_URL" -Atqc 'select 1' >/dev/null
  log "PostgreSQL answers on $host:$port/$db"
}

ensure_redis() {
  local host port
  case $REDIS_URL in
    redis-sentinel://* | redis-cluster://*)
      # A deployment of the caller's own: used as it is, never started here.
      command -v redis-server >/dev/null || apt_install redis-server
      log "REDIS_URL names a Sentinel or Cluster deployment: using it as it is"
      return ;;
  esac
  host=$(url_host "$REDIS_URL"); port=$(url_port "$REDIS_URL" 6379)
  if port_open "$host" "$port"; then
    log "Redis answers on $host:$port"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$LOCAL/redis"
  log "starting Redis on $host:$port"
  redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --dir "$LOCAL/redis" --logfile "$LOCAL/redis/redis.log" --pidfile "$LOCAL/redis/redis-$port.pid"
  for _ in $(seq 50); do port_open "$host" "$port" && { log "Redis answers on $host:$port"; return; }; sleep 0.1; done
  log "Redis did not start; see $LOCAL/redis/redis.log"
  exit 1
}

ensure_tools() {
  local missing=()
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v chromium >/dev/null || missing+=(chromium)
  # Noto (Arabic: Naskh; Urdu: Nastaliq) and IPA Gothic (Japanese).
  local font
  for font in fonts-noto-core fonts-ipafont-gothic; do
    dpkg -s "$font" >/dev/null 2>&1 || missing+=("$font")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}" || log "without ${missing[*]} some tests will be skipped"
  fi
  ensure_promtool || log "without promtool the alert rules' checks will be skipped"
}

# promtool (the alert rules' checks) comes out of Debian's prometheus
# package, unpacked under .local/ rather than installed: installing it
# would also start a Prometheus server.
ensure_promtool() {
  command -v promtool >/dev/null && return
  [[ -x "$LOCAL/bin/promtool" ]] && return
  log "unpacking promtool from Debian's prometheus package into .local/"
  mkdir -p "$LOCAL/pkg" "$LOCAL/bin"
  if ! (cd "$LOCAL/pkg" && apt-get download prometheus >/dev/null 2>&1); then
    [[ $(id -u) -eq 0 ]] || return 1
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    (cd "$LOCAL/pkg" && apt-get download prometheus >/dev/null) || return 1
  fi
  dpkg-deb -x "$(ls -t "$LOCAL"/pkg/prometheus_*.deb | head -1)" "$LOCAL/prometheus"
  ln -sf "$LOCAL/prometheus/usr/bin/promtool" "$LOCAL/bin/promtool"
  "$LOCAL/bin/promtool" --version >/dev/null
}

# PgBouncer in transaction mode in front of DATABASE_URL's PostgreSQL,
# project-local (config and log under .local/pgbouncer, loopback only),
# forwarding every database name as it is: the tests that run through it
# (PGBOUNCER_URL, see internal/scratch) make a database each. Prints the
# URL to reach it.
PGBOUNCER_PORT=${PGBOUNCER_PORT:-6433}
ensure_pgbouncer() {
  local host port user dir=$LOCAL/pgbouncer
  host=$(url_host "$DATABASE_URL"); port=$(url_port "$DATABASE_URL" 5432)
  user=${DATABASE_URL#*://}; user=${user%%@*}; user=${user%%:*}
  command -v pgbouncer >/dev/null || apt_install pgbouncer || return 1
  if ! port_open 127.0.0.1 "$PGBOUNCER_PORT"; then
    mkdir -p "$dir"
    printf '%s\n' "[databases]" "* = host=$host port=$port" "[pgbouncer]" \
      "listen_addr = 127.0.0.1" "listen_port = $PGBOUNCER_PORT" "unix_socket_dir =" \
      "auth_type = trust" "auth_file = $dir/userlist.txt" "admin_users = $user" \
      "pool_mode = transaction" "default_pool_size = 20" "max_client_conn = 2000" "server_idle_timeout = 10" \
      "logfile = $dir/pgbouncer.log" "pidfile = $dir/pgbouncer.pid" >"$dir/pgbouncer.ini"
    printf '"%s" ""\n' "$user" >"$dir/userlist.txt"
    log "starting PgBouncer (transaction pooling) on 127.0.0.1:$PGBOUNCER_PORT"
    if [[ $(id -u) -eq 0 ]]; then
      # PgBouncer refuses to run as root.
      chown -R postgres "$dir"
      pgbouncer -d -u postgres "$dir/pgbouncer.ini"
    else
      pgbouncer -d "$dir/pgbouncer.ini"
    fi
    for _ in $(seq 50); do port_open 127.0.0.1 "$PGBOUNCER_PORT" && break; sleep 0.1; done
    port_open 127.0.0.1 "$PGBOUNCER_PORT" || { log "PgBouncer did not start; see $dir/pgbouncer.log"; return 1; }
  fi
  printf 'postgres://%s@127.0.0.1:%s/?sslmode=disable&default_query_exec_mode=cache_describe\n' "$user" "$PGBOUNCER_PORT"
}

case "${1:-all}" in
  all) ensure_postgres; ensure_redis; ensure_tools ;;
  db) ensure_postgres; ensure_redis ;;
  pgbouncer) ensure_postgres 2>/dev/null; ensure_pgbouncer ;;
  *) echo "usage: $0 [all|db|pgbouncer]" >&2; exit 2 ;;
esac
