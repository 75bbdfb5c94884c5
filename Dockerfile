# syntax=docker/dockerfile:1
# runs-replicator: a small non-root image with the release binary and the documented default
# configuration. Build: docker build -t runs-replicator .   (docker-compose.yml builds it too)

# ---- build ------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Dependencies first, in a layer of their own: it is rebuilt only when Cargo.toml or Cargo.lock
# change, not on every source edit. A dummy lib + main stand in for the crate's own code, and
# stubs for the benchmarks Cargo.toml declares (cargo refuses a manifest whose targets are missing;
# they are never built here).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches/e2e \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/hot_path.rs \
    && echo 'fn main() {}' > benches/e2e/main.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/runs-replicator target/release/deps/runs_replicator-* \
        target/release/deps/libruns_replicator-* target/release/.fingerprint/runs-replicator-*

# The real source. The dummy's fingerprints are gone, so cargo rebuilds the crate whatever the
# copied files' modification times are.
COPY src ./src
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/runs-replicator /out/runs-replicator

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim

# DL3008 (pin apt versions) is ignored on purpose: Debian's archive serves only the current
# version of a package in a release, so an exact ca-certificates pin breaks the build at the next
# update of the trust store; the base image tag (bookworm) already fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 runs-replicator \
    && useradd --system --uid 10001 --gid runs-replicator --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin runs-replicator

COPY --from=builder /out/runs-replicator /usr/local/bin/runs-replicator
COPY config/runs-replicator.toml /etc/runs-replicator/runs-replicator.toml

ENV RUNS_REPLICATOR_CONFIG=/etc/runs-replicator/runs-replicator.toml
USER 10001:10001
EXPOSE 9187

# GET /healthz on metrics.listen (0.0.0.0 is asked on 127.0.0.1): exit 0 when it answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["runs-replicator", "--health-check"]

ENTRYPOINT ["runs-replicator"]
