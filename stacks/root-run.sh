#!/usr/bin/env bash
# Runs a command on the current stack inside the Debian 13 root (built first by root-build.sh when needed),
# in this checkout, which is bind-mounted at the same path together with /proc, /dev, /sys and the data sets.
#   stacks/root-run.sh python -m pytest -x tests/models
# Whatever the command's outcome, everything mounted is unmounted again (EXIT trap), and the command's exit
# code is this script's. Where the host cannot build the root, prints "skipped: REASON" and exits 0.
set -euo pipefail
source "$(dirname "$0")/root-lib.sh"
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

reason=$(root_skip_reason)
if [ -n "$reason" ]; then echo "skipped: current stack (Debian 13 root): $reason"; exit 0; fi
"$CHECKOUT/stacks/root-build.sh"

# Two runs at once would unmount each other's mounts: one at a time.
exec 9>"$ROOT.lock"
flock 9
trap unmount_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mount_common
in_root "$@"
