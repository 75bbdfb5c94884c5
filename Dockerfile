# syntax=docker/dockerfile:1
# runs-replicator: a small non-root image with the stripped release binary, the documented default
# configuration and the licenses.
#
#   docker build -t runs-replicator:latest \
#     --build-arg GIT_COMMIT="$(git rev-parse --short=12 HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker build --target debug-symbols --output type=local,dest=debug .   # the split-off debug info
#
# Both bases are pinned by digest (the multi-platform index of the dated tag), so a rebuild gets
# the same bases. To move to newer ones: `docker buildx imagetools inspect debian:bookworm-<date>-slim`
# (and rust:<version>-bookworm) prints the index digest; the official images' digests are also
# recorded in github.com/docker-library/repo-info (repos/<image>/remote/<tag>.md).

# ---- build ------------------------------------------------------------------------------------
FROM rust:1.98.0-bookworm@sha256:82150a52ec202c1b14d7817e14516c392bb7f5cfebd88f1ed531cb37ebd39922 AS builder
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
# copied files' modification times are. The commit is compiled in (--version, the build_info
# metric, the first log line). The release profile keeps line tables (readable backtraces and
# profiles); they are split into runs-replicator.debug, which the binary names (.gnu_debuglink)
# and the debug-symbols stage exports, and the shipped binary is stripped.
COPY src ./src
ARG GIT_COMMIT=unknown
RUN RUNS_REPLICATOR_GIT_COMMIT="$GIT_COMMIT" cargo build --release --locked \
    && install -D -m 0755 target/release/runs-replicator /out/runs-replicator \
    && objcopy --only-keep-debug --compress-debug-sections /out/runs-replicator /out/runs-replicator.debug \
    && objcopy --strip-all --add-gnu-debuglink=/out/runs-replicator.debug /out/runs-replicator \
    && /out/runs-replicator --version

FROM scratch AS debug-symbols
COPY --from=builder /out/runs-replicator.debug /

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-20260918-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

ARG VERSION=0.1.0
ARG GIT_COMMIT=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="runs-replicator" \
      org.opencontainers.image.description="Keeps trigger.dev's ClickHouse runs table equal to its Postgres runs by logical replication" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.documentation="README.md: Running it" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-20260918-slim" \
      org.opencontainers.image.base.digest="sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251"

# DL3008 (pin apt versions) is ignored on purpose: Debian's archive serves only the current
# version of a package in a release, so an exact ca-certificates pin breaks the build at the next
# update of the trust store; the base image's digest already fixes the release and its date.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 runs-replicator \
    && useradd --system --uid 10001 --gid runs-replicator --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin runs-replicator

COPY --from=builder /out/runs-replicator /usr/local/bin/runs-replicator
COPY config/runs-replicator.toml /etc/runs-replicator/runs-replicator.toml
COPY LICENSE LICENSE-MIT LICENSE-APACHE /usr/share/licenses/runs-replicator/

ENV RUNS_REPLICATOR_CONFIG=/etc/runs-replicator/runs-replicator.toml
USER 10001:10001
EXPOSE 9187

# GET /healthz on metrics.listen (0.0.0.0 is asked on 127.0.0.1): exit 0 when it answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["runs-replicator", "--health-check"]

ENTRYPOINT ["runs-replicator"]
