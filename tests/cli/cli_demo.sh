#!/usr/bin/env bash
# The CLI demo (demo.sh) runs clean on a private store.
source "$(dirname "$0")/lib.sh" "$@"
start_daemon
bash "$(dirname "$0")/demo.sh" "$ARBOR"
echo PASS
