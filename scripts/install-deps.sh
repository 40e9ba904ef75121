#!/usr/bin/env bash
# Installs every Debian package Arbor builds, tests and benchmarks with.
# Idempotent: does nothing when all are present. Needs root (or sudo).
set -euo pipefail
packages=(
  build-essential cmake pkg-config git ca-certificates curl jq python3
  liburing-dev libisal-dev libfuse3-dev fuse3 libnbd-dev libnbd-bin
  libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  fio nbdkit qemu-utils postgresql-15 e2fsprogs xfsprogs util-linux nbd-client
  clang libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
echo "arbor: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
