#!/usr/bin/env bash
# Make sure a Docker engine answers and the host tools stacks uses are present.
# On a Debian/Ubuntu machine where we are root, missing pieces are installed
# and dockerd is started in the background; elsewhere we only say what is missing.
set -euo pipefail

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /usr/bin/docker ] || need_pkgs+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need_pkgs+=(mmdebstrap)
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
command -v dot >/dev/null 2>&1 || need_pkgs+=(graphviz)
command -v htpasswd >/dev/null 2>&1 || need_pkgs+=(apache2-utils)
# The workflow test runs actionlint, which hands every run: script to shellcheck.
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)
# Headless browser for the JupyterLab check of `stacks test` (without it that check is "not run"),
# with a CJK font so screenshots of the zh-CN lab are legible.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium fonts-wqy-microhei)
# Foreign platforms (`stacks build --platform linux/arm64`) build and run under QEMU user emulation.
command -v qemu-aarch64-static >/dev/null 2>&1 || need_pkgs+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need_pkgs+=(binfmt-support)
command -v arch-test >/dev/null 2>&1 || need_pkgs+=(arch-test)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-engine: installing ${need_pkgs[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "ensure-engine: please install: ${need_pkgs[*]}" >&2
  fi
fi

# QEMU's interpreters must be registered with the kernel (binfmt_misc) for foreign-platform
# containers to run; without them those builds stop with a message naming what is missing.
ensure_emulation() {
  local binfmt=/proc/sys/fs/binfmt_misc
  if [ ! -e "$binfmt/status" ]; then
    if [ "$(id -u)" = 0 ]; then
      mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null \
        || { echo "ensure-engine: cannot mount binfmt_misc on $binfmt: foreign platforms (linux/arm64) cannot build here" >&2; return 0; }
    else
      echo "ensure-engine: binfmt_misc is not mounted (as root: mount -t binfmt_misc binfmt_misc $binfmt): foreign platforms cannot build here" >&2
      return 0
    fi
  fi
  if [ ! -e "$binfmt/qemu-aarch64" ] || ! grep -q '^enabled' "$binfmt/qemu-aarch64"; then
    if [ "$(id -u)" = 0 ] && command -v update-binfmts >/dev/null 2>&1; then
      update-binfmts --enable >/dev/null 2>&1 || true
    fi
  fi
  if [ -e "$binfmt/qemu-aarch64" ] && grep -q '^enabled' "$binfmt/qemu-aarch64"; then
    return 0
  fi
  echo "ensure-engine: QEMU emulation of arm64 is not registered (install qemu-user-static and binfmt-support, then update-binfmts --enable): linux/arm64 cannot build here" >&2
}
ensure_emulation

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-engine: no Docker engine answers; start Docker (or set DOCKER_HOST) and retry" >&2
  exit 1
fi
log="${TMPDIR:-/tmp}/stacks-dockerd.log"
echo "ensure-engine: starting dockerd (log: $log)" >&2
setsid dockerd >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "ensure-engine: dockerd did not come up within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1
