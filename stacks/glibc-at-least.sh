#!/usr/bin/env bash
# Exit 0 when this host's glibc is at least the given version (TFX 1.21's wheels need 2.39), else 1
# (also on hosts without glibc, e.g. musl or macOS).
set -euo pipefail
have=$(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2 || true)
[ -n "$have" ] && [ "$(printf '%s\n%s\n' "${1:?usage: glibc-at-least.sh X.Y}" "$have" | sort -V | head -1)" = "$1" ]
