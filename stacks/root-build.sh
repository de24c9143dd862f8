#!/usr/bin/env bash
# Builds, once, the Debian 13 root that runs the current stack (Python 3.12, TensorFlow 2.21, TFX 1.21;
# TFX 1.21's wheels need glibc >= 2.39, Debian 13 has 2.41), in $TFXFORMERS_ROOT (default
# $TFXFORMERS_HOME/debian13-root, i.e. ~/.cache/tfxformers/debian13-root): outside the checkout, so a clean
# clone reuses it. Each stage leaves a stamp in $ROOT/.tfxformers and is skipped when its stamp exists:
#   1. debootstrap (minbase) from the Debian mirror this host's apt uses,
#   2. the root's packages (g++ because pyfarmhash, a TFDV dependency, has no wheel; Python's libraries),
#   3. a Python 3.12 copied in (stacks/find-python.sh: python3.12 on PATH, pyenv, uv's managed Python),
#   4. a venv at /opt/tfxformers-venv with requirements/current.lock (re-done when the lock changes),
#   5. this checkout installed editable (re-done when setup.py changes or another checkout uses the root).
# Where the host cannot build it (not root, no Debian mirror, no mounts), prints "skipped: REASON" and
# exits 0, so `make test` goes on with the legacy stack.
set -euo pipefail
source "$(dirname "$0")/root-lib.sh"

reason=$(root_skip_reason)
if [ -n "$reason" ]; then echo "skipped: current stack (Debian 13 root): $reason"; exit 0; fi

mkdir -p "$(dirname "$ROOT")"
# One builder at a time; root-run.sh takes the same lock.
exec 9>"$ROOT.lock"
flock 9

stage_start() { echo "== root-build: $1 ($(date -u +%H:%M:%S))"; STAGE_T0=$SECONDS; }
stage_done() { date -u +%FT%TZ >"$STATE/$1.done"; echo "== root-build: $1 took $((SECONDS - STAGE_T0)) s"; }

# 1. debootstrap into a scratch folder, renamed when complete, so an interrupted run starts over cleanly.
if [ ! -f "$STATE/debootstrap.done" ]; then
  stage_start debootstrap
  if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get install -y -qq debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
  fi
  ROOT_SAVED=$ROOT
  ROOT=$ROOT.partial
  assert_nothing_mounted
  rm -rf "$ROOT"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$(debian_mirror)" >"$ROOT_SAVED.debootstrap.log" 2>&1 ||
    { echo "error: debootstrap failed, see $ROOT_SAVED.debootstrap.log" >&2; exit 1; }
  ROOT=$ROOT_SAVED
  assert_nothing_mounted
  rm -rf "$ROOT"
  mv "$ROOT.partial" "$ROOT"
  mkdir -p "$STATE"
  stage_done debootstrap
fi

trap unmount_all EXIT
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"

# 2. The root's packages.
if [ ! -f "$STATE/packages.done" ]; then
  stage_start packages
  unmount_stale
  mount_into_root --proc
  mount_into_root --rbind /dev
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    /bin/bash -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends g++ ca-certificates \
      libffi8 libsqlite3-0 libbz2-1.0 liblzma5 libssl3t64 libreadline8t64 libncursesw6 zlib1g \
      && apt-get clean' >"$STATE/packages.log" 2>&1 ||
    { echo "error: installing the root's packages failed, see $STATE/packages.log" >&2; exit 1; }
  unmount_all
  stage_done packages
fi

# The host's CA bundle, refreshed on every build and after the packages (ca-certificates rewrites it): pip
# and uv inside reach the registries through whatever certificate authority the host trusts.
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] || ca=$ROOT/etc/ssl/certs/ca-certificates.crt
cp -L "$ca" "$ROOT/etc/ssl/certs/host-ca-certificates.crt"

# 3. Python 3.12: a self-contained installation (pyenv's or uv's) copied in at the same path. A
# distribution's /usr Python cannot be copied that way; such hosts need pyenv or uv (uv downloads Python
# from the internet, which hosts with only package registries do not reach).
if [ ! -f "$STATE/python.done" ]; then
  stage_start python
  python=$("$CHECKOUT/stacks/find-python.sh" 3.12)
  prefix=$("$python" -c 'import sys; print(sys.base_prefix)')
  case "$prefix" in
    /usr | /usr/local)
      echo "error: Python 3.12 at $python lives in $prefix, which cannot be copied into the root;" \
        "install one with pyenv (\`pyenv install 3.12\`) or uv (\`uv python install 3.12\`)" >&2
      exit 1 ;;
  esac
  rm -rf "${ROOT:?}$prefix"
  mkdir -p "$(dirname "$ROOT$prefix")"
  cp -a "$prefix" "$ROOT$prefix"
  echo "$prefix/bin/python3.12" >"$STATE/python"
  stage_done python
fi

# 4. The venv with the current lock, re-done when the lock changes; 5. this checkout installed editable,
# re-done when setup.py changes or another checkout (a CI clone) uses the root. Both with --no-deps, as
# `make setup` does for the legacy lock (the lock carries an override that TFX's metadata contradicts).
want_venv=$(sha256sum <"$CHECKOUT/$LOCK" | cut -d' ' -f1)
want_editable="$CHECKOUT $(sha256sum <"$CHECKOUT/setup.py" | cut -d' ' -f1)"
if [ "$(cat "$STATE/venv.done" 2>/dev/null || true)" != "$want_venv" ] ||
  [ "$(cat "$STATE/editable.done" 2>/dev/null || true)" != "$want_editable" ]; then
  stage_start venv
  mount_common
  # uv's download cache, shared with the host when it has one: re-installs then take seconds.
  if [ -d "$HOME/.cache/uv" ]; then mount_into_root --bind "$HOME/.cache/uv"; fi
  python=$(cat "$STATE/python")
  # --compile-bytecode as in the Makefile: commands in the root run with a clean environment and would write
  # .pyc files themselves, but parallel test workers then each compile the same modules at first import.
  uv="UV_LINK_MODE=copy UV_CACHE_DIR=$HOME/.cache/uv $VENV/bin/uv pip install --python $VENV/bin/python --no-deps --compile-bytecode"
  if [ "$(cat "$STATE/venv.done" 2>/dev/null || true)" != "$want_venv" ]; then
    in_root /bin/bash -c "set -e
      [ -x $VENV/bin/python ] || $python -m venv $VENV
      $VENV/bin/python -m pip install --quiet --disable-pip-version-check uv==$UV_VERSION
      $uv -r $LOCK" >"$STATE/venv.log" 2>&1 ||
      { tail -20 "$STATE/venv.log" >&2; echo "error: installing $LOCK failed, see $STATE/venv.log" >&2; exit 1; }
    echo "$want_venv" >"$STATE/venv.done"
  fi
  in_root /bin/bash -c "$uv -e ." >"$STATE/editable.log" 2>&1 ||
    { tail -20 "$STATE/editable.log" >&2; echo "error: installing the checkout failed, see $STATE/editable.log" >&2; exit 1; }
  echo "$want_editable" >"$STATE/editable.done"
  unmount_all
  echo "== root-build: venv took $((SECONDS - STAGE_T0)) s"
fi
echo "current stack root ready: $ROOT (venv $VENV inside)"
