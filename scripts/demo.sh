#!/usr/bin/env bash
# Arbor's main job on the embedded default (a store under ./arbor-data, nothing to configure):
# a volume, a branch of it made in constant time, a change in the branch, and the space each holds.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
export PATH="$PWD/build/src/cli:$PWD/build/src/daemon:$PATH"
export ARBOR_HOME="${ARBOR_HOME:-$PWD/arbor-data}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "store: $ARBOR_HOME (arbor starts arbord on it when none runs)"
arbor daemon start
for v in demo-dev demo; do arbor delete "$v" >/dev/null 2>&1 || true; done

say "a 1 GiB volume with 256 MiB of data"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 256M /dev/urandom > "$tmp/data.img"
arbor volume create demo --size 1G
arbor import demo "$tmp/data.img"

say "branch it (constant time: the branch shares every block)"
arbor branch create demo-dev --from demo

say "write 4 MiB into the branch at 100 MiB"
head -c 4M /dev/urandom > "$tmp/patch.img"
arbor import demo-dev "$tmp/patch.img" --offset 100M

say "the two differ only where written"
arbor export demo "$tmp/a.img"
arbor export demo-dev "$tmp/b.img"
differing=$( (cmp -l "$tmp/a.img" "$tmp/b.img" || true) | awk '{b=int(($1-1)/4096)} b!=last{n++; last=b} END{print n+0}')
echo "blocks that differ: $differing of $((1024*1024*1024/4096)) (4 MiB written = 1024 blocks)"
cmp -n $((100*1024*1024)) "$tmp/a.img" "$tmp/b.img" && echo "first 100 MiB identical"
cmp -i $((104*1024*1024)) "$tmp/a.img" "$tmp/b.img" && echo "everything after 104 MiB identical"

say "space: owned by each alone vs shared"
arbor usage
say "done: the store stays in $ARBOR_HOME; 'arbor list', 'arbor daemon stop' (see README)"
