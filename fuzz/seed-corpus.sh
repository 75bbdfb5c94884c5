#!/usr/bin/env bash
# Writes each captured pgoutput fixture message as one binary file of the pgoutput_decode corpus,
# so fuzzing starts from real server output instead of from nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS="$ROOT/fuzz/corpus/pgoutput_decode"
mkdir -p "$CORPUS"
for f in "$ROOT"/tests/fixtures/pgoutput/*.txt; do
    n=0
    grep -v '^#' "$f" | while read -r hex; do
        [ -n "$hex" ] || continue
        n=$((n + 1))
        printf '%s' "$hex" | xxd -r -p >"$CORPUS/$(basename "$f" .txt)-$n"
    done
done
echo "seeded $(ls "$CORPUS" | wc -l) files into $CORPUS"
