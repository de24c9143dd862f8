# Sourced by root-build.sh and root-run.sh: where the Debian 13 root lives, whether this host can build
# it, and the mounts a command inside it needs. The root carries the current stack (Python 3.12,
# TensorFlow 2.21, TFX 1.21), whose TFX wheels need glibc >= 2.39 that older hosts lack; it is kept outside
# the checkout, like the data sets, so a clean clone reuses it.
# shellcheck shell=bash

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_HOME=${TFXFORMERS_HOME:-$HOME/.cache/tfxformers}
ROOT=${TFXFORMERS_ROOT:-$DATA_HOME/debian13-root}
SUITE=trixie
# Inside the root; the same path is used by the stamps and by root-run.sh.
VENV=/opt/tfxformers-venv
LOCK=requirements/current.lock
UV_VERSION=0.13.9
STATE=$ROOT/.tfxformers

# The mirror this host's apt already uses (deb822 `URIs:` or one-line `deb URI suite`), minus security.
debian_mirror() {
  if [ -n "${TFXFORMERS_DEBIAN_MIRROR:-}" ]; then echo "$TFXFORMERS_DEBIAN_MIRROR"; return; fi
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE '(https?|file)://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true
}

# Empty when this host can build and enter the root, else a one-line reason.
root_skip_reason() {
  [ "$(uname -s)" = Linux ] || { echo "not Linux"; return; }
  [ "$(id -u)" -eq 0 ] || { echo "building the Debian 13 root needs root (debootstrap, chroot, mount)"; return; }
  [ "$(uname -m)" = x86_64 ] || { echo "current.lock is resolved for x86_64 only"; return; }
  [ -n "$(debian_mirror)" ] || { echo "no Debian mirror in /etc/apt (set TFXFORMERS_DEBIAN_MIRROR)"; return; }
  if [ ! -f "$STATE/debootstrap.done" ] && ! command -v debootstrap >/dev/null 2>&1 &&
    ! command -v apt-get >/dev/null 2>&1; then
    echo "no debootstrap and no apt-get to install it"; return
  fi
  local probe
  probe=$(mktemp -d)
  mkdir "$probe/a" "$probe/b"
  if mount --bind "$probe/a" "$probe/b" 2>/dev/null; then umount "$probe/b"; else
    rm -rf "$probe"; echo "this host does not allow bind mounts (a container without CAP_SYS_ADMIN?)"; return
  fi
  rm -rf "$probe"
}

MOUNTED=()

# mount_into_root --proc | mount_into_root --bind|--rbind SOURCE (at the same path inside).
# Plain --bind for folders of our own: the data home holds the root itself, and a recursive bind would
# carry the root's own mounts into it.
mount_into_root() {
  if [ "$1" = --proc ]; then
    mount -t proc proc "$ROOT/proc"
    MOUNTED+=("$ROOT/proc")
    return
  fi
  local target=$ROOT$2
  mkdir -p "$target"
  mount "$1" "$2" "$target"
  # Slave propagation: unmounting our copy must never unmount anything on the host.
  mount --make-rslave "$target"
  MOUNTED+=("$target")
}

# Called from an EXIT trap: undo every mount in reverse order, lazily if something still holds one.
unmount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -R "${MOUNTED[i]}" 2>/dev/null || umount -R -l "${MOUNTED[i]}" ||
      echo "warning: could not unmount ${MOUNTED[i]}" >&2
  done
  MOUNTED=()
}

# Mounts left under the root by a run that was killed outright (SIGKILL skips the EXIT trap). Only called
# with the root's lock held, so no live run is using them.
unmount_stale() {
  local target
  { grep -F " $ROOT/" /proc/self/mounts || true; } | cut -d' ' -f2 | sort -r | while read -r target; do
    echo "unmounting $target, left over by an earlier run" >&2
    umount -l "$target" 2>/dev/null || true
  done
}

# The mounts every command in the root gets: /proc, /dev (with /dev/shm for Beam's and multiprocessing's
# semaphores), /sys, the checkout and the data sets at the same paths as on the host.
mount_common() {
  unmount_stale
  mount_into_root --proc
  mount_into_root --rbind /dev
  mount_into_root --rbind /sys
  mount_into_root --bind "$CHECKOUT"
  mkdir -p "$DATA_HOME"
  mount_into_root --bind "$DATA_HOME"
}

# in_root CMD...: run CMD in the root, in the checkout, with the venv first on PATH and a clean environment.
in_root() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" \
    PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt \
    TFXFORMERS_HOME="$DATA_HOME" \
    /bin/bash -c 'cd "$0" && exec "$@"' "$CHECKOUT" "$@"
}

# Refuses to go on while anything is still mounted below the root (rm -rf would go through it).
assert_nothing_mounted() {
  if grep -qF " $ROOT/" /proc/self/mounts; then
    echo "error: something is still mounted under $ROOT; unmount it first:" >&2
    grep -F " $ROOT/" /proc/self/mounts | cut -d' ' -f2 >&2
    exit 1
  fi
}
