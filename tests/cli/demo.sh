#!/usr/bin/env bash
# The Arbor demo through the CLI, on the embedded default store (./arbor-data, or $ARBOR_HOME):
# create a volume, import data, branch it, write to the branch, show that the two differ only where
# written, and print the branch time and the bytes each owns and shares.
#
#   tests/cli/demo.sh [path/to/arbor]      (default: build/src/cli/arbor, else arbor on PATH)
#
# Rerunnable: it replaces its own volumes (demo, demo-branch) each time.
set -euo pipefail
ARBOR=${1:-}
if [ -z "$ARBOR" ]; then
  for c in build/src/cli/arbor "$(command -v arbor || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && ARBOR=$c && break
  done
fi
[ -n "$ARBOR" ] || { echo "demo: cannot find the arbor binary; pass its path" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { printf '\n== %s\n' "$*"; }

"$ARBOR" delete demo-branch >/dev/null 2>&1 || true
"$ARBOR" delete demo >/dev/null 2>&1 || true

say "a 1 GiB thin volume, and 64 MiB of data imported into it"
"$ARBOR" volume create demo --size 1G
head -c 64M /dev/urandom >"$tmp/data"
"$ARBOR" import demo "$tmp/data"

say "a branch of it: constant time, shares every block"
"$ARBOR" branch create demo-branch --from demo

say "write 1 MiB into the branch at offset 16 MiB"
head -c 1M /dev/urandom >"$tmp/patch"
"$ARBOR" import demo-branch "$tmp/patch" --offset 16M

say "the two differ only where the branch was written"
"$ARBOR" export demo "$tmp/parent.img" >/dev/null
"$ARBOR" export demo-branch "$tmp/branch.img" >/dev/null
cmp -s "$tmp/data" <(head -c 64M "$tmp/parent.img") || { echo "demo: the parent changed!" >&2; exit 1; }
read -r first last count < <({ cmp -l "$tmp/parent.img" "$tmp/branch.img" || true; } |
  awk 'NR == 1 {f = $1} {l = $1; n++} END {print f - 1, l - 1, n + 0}')
echo "parent unchanged; $count bytes differ, all in [$first, $last] (the 1 MiB written at $((16 << 20)))"
[ "$first" -ge $((16 << 20)) ] && [ "$last" -lt $((17 << 20)) ] || { echo "demo: difference outside the write!" >&2; exit 1; }

say "space: each owns what only it holds, the rest is shared"
"$ARBOR" usage demo demo-branch
"$ARBOR" usage | tail -1
