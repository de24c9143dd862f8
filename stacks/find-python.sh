#!/usr/bin/env bash
# Prints the path of a working Python X.Y interpreter (X.Y is the only argument), for the Makefile and the
# Debian 13 root. Finding it must not need pyenv: first `pythonX.Y` on PATH (only if it really runs;
# pyenv's shims are on PATH but refuse unless pyenv selects them), then pyenv's newest X.Y.*, then uv's
# managed Python (`uv python find`, else `uv python install`, which downloads from the internet: on hosts
# with only package registries that step fails). Exit 1 with a one-line hint when none is found.
set -euo pipefail

want=${1:?usage: find-python.sh X.Y}

runs() {  # true when "$1" is an interpreter of exactly version $want
  [ -n "$1" ] && "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" \
    >/dev/null 2>&1
}

candidate=$(command -v "python$want" || true)
if runs "$candidate"; then echo "$candidate"; exit 0; fi

if command -v pyenv >/dev/null 2>&1; then
  version=$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}\.[0-9]+$" | sort -V | tail -1 || true)
  if [ -n "$version" ]; then
    candidate=$(PYENV_VERSION=$version pyenv which "python$want" 2>/dev/null || true)
    if runs "$candidate"; then echo "$candidate"; exit 0; fi
  fi
fi

uv=$(command -v uv || true)
uv=${uv:-${UV:-}}
if [ -n "$uv" ] && [ -x "$uv" ]; then
  candidate=$("$uv" python find --managed-python "$want" 2>/dev/null || true)
  if ! runs "$candidate" && "$uv" python install "$want" >&2; then
    candidate=$("$uv" python find --managed-python "$want" 2>/dev/null || true)
  fi
  if runs "$candidate"; then echo "$candidate"; exit 0; fi
fi

echo "error: no Python $want found (tried python$want on PATH, pyenv, uv's managed Python; install one" \
  "with your package manager, \`pyenv install $want\`, or \`uv python install $want\` on a host with internet)" >&2
exit 1
