# syntax=docker/dockerfile:1
#
# near-payouts: one image, binary `payouts`. Default command: `payouts run` (indexer + distributor + API)
# with the configuration mounted at /etc/payouts/payouts.toml. See docker-compose.yml and README.md "Docker".
#
# Nothing secret is copied into the image (.dockerignore keeps payouts.toml, key files and .env out): the
# database password, treasury key files and API tokens come from the environment or mounted files at run time.

# Builder. The workspace's own MSRV is 1.86, but `cargo build --locked` needs what Cargo.lock pins: its AWS
# crates (near-lake-framework's S3 client) want rustc >= 1.94.1, so the builder uses 1.95 (CI's toolchain).
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds (BuildKit); the binary is copied
# out of the cached target directory so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin payouts \
    && install -m 0755 target/release/payouts /usr/local/bin/payouts

# Runtime: Debian slim with CA certificates (HTTPS to NEAR RPC, neardata, S3) and libssl (the RPC client
# links OpenSSL through native-tls).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 payouts \
    && useradd --system --uid 10001 --gid payouts --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin payouts \
    && mkdir -p /etc/payouts/keys
COPY --from=builder /usr/local/bin/payouts /usr/local/bin/payouts

# Relative paths in payouts.toml (e.g. distributor.key_files = ["keys/treasury-0.json"]) resolve here.
WORKDIR /etc/payouts
USER 10001:10001

# The API (api.listen, default 127.0.0.1:8080). Inside a container it must listen on all interfaces:
# set PAYOUTS_API__LISTEN=0.0.0.0:8080 (docker-compose.yml does) or api.listen in the mounted payouts.toml.
EXPOSE 8080

ENTRYPOINT ["payouts"]
CMD ["run", "--config", "/etc/payouts/payouts.toml"]
