#!/usr/bin/env bash
# Benchmark (not a test) of POST /send-ft: the release `payouts api` on a throwaway PostgreSQL (or the server in
# DATABASE_URL), loaded by wrk with a distinct Idempotency-Key per request — every request inserts one claim.
#
#   api/bench/run.sh                      # 20 s, 2 wrk threads, 48 connections, durable Postgres defaults
#   DURATION=60s CONNECTIONS=128 api/bench/run.sh
#   DURABLE=0 api/bench/run.sh            # fsync/synchronous_commit off (the test clusters' settings)
#   BUILD=0 api/bench/run.sh              # skip `cargo build --release`
#   RATE_LIMIT=2000 api/bench/run.sh      # with the default per-token rate limit (over it: 429)
#
# Needs wrk (apt-get install -y wrk) and, without DATABASE_URL, PostgreSQL server binaries (initdb, pg_ctl).
# Only loopback traffic; the run is bounded by DURATION and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION="${DURATION:-20s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-48}"
SEND_WORKERS="${SEND_WORKERS:-2}"
DB_CONNECTIONS="${DB_CONNECTIONS:-16}"
PORT="${PORT:-18089}"
PGPORT_BENCH="${PGPORT_BENCH:-15439}"
DURABLE="${DURABLE:-1}"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 1; }

# BUILD=0 uses the release binary already built.
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release --bin payouts
fi
BIN="${CARGO_TARGET_DIR:-target}/release/payouts"

work="$(mktemp -d)"
chmod 755 "$work"
api_pid=""
pg_data=""
as_pg=()
pg_bin=""
cleanup() {
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  if [ -n "$pg_data" ]; then
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" stop -m fast -w >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  if command -v initdb >/dev/null; then
    pg_bin="$(dirname "$(command -v initdb)")"
  else
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  fi
  [ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found; set DATABASE_URL" >&2; exit 1; }
  if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
    chown postgres "$work"
  fi
  pg_data="$work/data"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  opts="-p $PGPORT_BENCH -k $work -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB"
  if [ "$DURABLE" = 0 ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/postgres.log" -w -o "$opts" start >/dev/null
  "${as_pg[@]}" psql -h 127.0.0.1 -p "$PGPORT_BENCH" -U postgres -qc "CREATE DATABASE payouts_bench"
  DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT_BENCH/payouts_bench"
fi

NEAR_PAYOUTS_BENCH_TOKEN="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
export NEAR_PAYOUTS_BENCH_TOKEN
cat > "$work/payouts.toml" <<TOML
[database]
url = "$DATABASE_URL"
max_connections = $DB_CONNECTIONS

[api]
listen = "127.0.0.1:$PORT"
allowed_tokens = ["token.devnet"]
ready_max_lag_blocks = 0
send_workers = $SEND_WORKERS
# One token sends everything, faster than its default limit (2,000/s): the bench measures the write path.
# RATE_LIMIT=2000 measures with the default instead (requests over it answer 429, counted as non-2xx).
rate_limit_token_per_second = ${RATE_LIMIT:-1000000}
rate_limit_token_burst = ${RATE_BURST:-${RATE_LIMIT:-1000000}}

[[api.tokens]]
name = "bench"
scopes = ["send", "metrics"]
token_env = "NEAR_PAYOUTS_BENCH_TOKEN"

[log]
level = "warn"
TOML

"$BIN" --config "$work/payouts.toml" migrate >/dev/null
"$BIN" --config "$work/payouts.toml" api &
api_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null

# CPU ticks (user + system) of a set of processes, from /proc: how much CPU each side spent per request,
# a figure that stays meaningful when something else runs on the machine too.
ticks() { # pids...
  local t=0 p f
  for p in "$@"; do
    f="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
    f="${f##*) }"
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
pg_pids() { # this cluster's postmaster and its children (not other clusters on the machine)
  [ -n "$pg_data" ] || return 0
  local pm
  pm="$(head -1 "$pg_data/postmaster.pid" 2>/dev/null)" || return 0
  echo "$pm"
  pgrep -P "$pm" || true
}
api_before="$(ticks "$api_pid")"
pg_before="$(ticks $(pg_pids))"

echo "bench: POST /send-ft, $DURATION, $THREADS wrk threads, $CONNECTIONS connections, $SEND_WORKERS insert workers, durable=$DURABLE"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s api/bench/send_ft.lua \
  "http://127.0.0.1:$PORT/send-ft" | tee "$work/wrk.txt"
# Every request carried a new key: answered requests and new claim rows must match (requests cut off by the end
# of the run may still have inserted their row, so rows >= requests).
requests="$(awk '/^requests [0-9]+,/ {gsub(",", "", $2); print $2}' "$work/wrk.txt")"
rows="$(curl -fsS -H "Authorization: Bearer $NEAR_PAYOUTS_BENCH_TOKEN" "http://127.0.0.1:$PORT/metrics" | awk '/^payouts_claims\{status="pending"\}/ {print $2}')"
echo "claim rows: $rows for $requests answered requests"
hz="$(getconf CLK_TCK)"
api_cpu=$(( ($(ticks "$api_pid") - api_before) * 1000000 / hz ))
if [ -n "$pg_data" ]; then
  pg_cpu=$(( ($(ticks $(pg_pids)) - pg_before) * 1000000 / hz ))
  echo "CPU per request: api $((api_cpu / requests)) us, postgres $((pg_cpu / requests)) us"
else
  echo "CPU per request: api $((api_cpu / requests)) us"
fi
