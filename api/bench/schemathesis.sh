#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API against its own OpenAPI document (not a test in CI): `payouts api` on a
# throwaway PostgreSQL, then schemathesis (pip install schemathesis) with every check, 1,000 examples per
# operation (12 operations: ≥ 12,000 generated requests).
#
#   api/bench/schemathesis.sh                      # release binary (cargo build --release first)
#   BIN=target/debug/payouts api/bench/schemathesis.sh
#   MAX_EXAMPLES=200 api/bench/schemathesis.sh     # quicker
#
# The token used holds every scope; the rate limits are raised so the fuzzer exercises the routes, not the
# limiter (429 behaviour has its own tests). Per-operation exceptions are in api/bench/schemathesis.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

MAX_EXAMPLES="${MAX_EXAMPLES:-1000}"
PORT="${PORT:-18091}"
PGPORT_FUZZ="${PGPORT_FUZZ:-15441}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/payouts}"
command -v schemathesis >/dev/null || { echo "schemathesis not found: pip install schemathesis" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release --bin payouts, or set BIN)" >&2; exit 1; }

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
  pw="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  ( umask 077; echo "$pw" > "$work/pgpass" )
  [ "$(id -u)" = 0 ] && chown postgres "$work/pgpass"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=scram-sha-256 --pwfile="$work/pgpass" -E UTF8 --locale=C >/dev/null
  opts="-p $PGPORT_FUZZ -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/postgres.log" -w -o "$opts" start >/dev/null
  DATABASE_URL="postgres://postgres:$pw@127.0.0.1:$PGPORT_FUZZ/postgres"
fi

NEAR_PAYOUTS_FUZZ_TOKEN="fuzz-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
export NEAR_PAYOUTS_FUZZ_TOKEN
cat > "$work/payouts.toml" <<TOML
[database]
url = "$DATABASE_URL"

[network]
chain_id = "devnet"
rpc_url = "http://127.0.0.1:9"

[indexer.source]
kind = "dir"
path = "$work/lake"

[api]
listen = "127.0.0.1:$PORT"
allowed_tokens = ["token.devnet", "usdc.devnet"]
ready_max_lag_blocks = 0
rate_limit_ip_per_second = 100000
rate_limit_ip_burst = 100000
rate_limit_token_per_second = 100000
rate_limit_token_burst = 100000

[[api.tokens]]
name = "fuzz"
scopes = ["read", "send", "admin", "approve"]
token_env = "NEAR_PAYOUTS_FUZZ_TOKEN"

[log]
level = "warn"
TOML

mkdir -p "$work/lake"
"$BIN" --config "$work/payouts.toml" migrate >/dev/null
"$BIN" --config "$work/payouts.toml" api &
api_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done

schemathesis --config-file api/bench/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
  --checks all --max-examples "$MAX_EXAMPLES" --seed "${SEED:-19}" \
  --header "Authorization: Bearer $NEAR_PAYOUTS_FUZZ_TOKEN" "$@"
