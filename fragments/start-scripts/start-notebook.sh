#!/bin/bash
# start-notebook.sh [SERVER ARGS...]   (also installed as start-notebook.py)
#
# Starts `jupyter ${DOCKER_STACKS_JUPYTER_CMD:-lab}` through start.sh with the
# given arguments (plus NOTEBOOK_ARGS). When JupyterHub spawned the container
# (JUPYTERHUB_API_TOKEN is set) it starts the single-user server instead.
#
# Authentication: the server reads JUPYTER_TOKEN from the environment itself.
# A password in JUPYTER_PASSWORD (or LABPASSWD, JUPYTERLAB_PW) is hashed here
# and only the hash reaches the server; the plain text leaves the environment
# before the server starts and is never written or printed. With a password
# and no JUPYTER_TOKEN, the password alone protects the server.
set -euo pipefail

if [ -n "${JUPYTERHUB_API_TOKEN:-}" ]; then
  echo "[start-notebook] JUPYTERHUB_API_TOKEN is set: starting the JupyterHub single-user server" >&2
  if ! command -v jupyterhub-singleuser >/dev/null 2>&1; then
    echo "[start-notebook] jupyterhub-singleuser is not installed in this image (add the jupyterhub-singleuser fragment)" >&2
    exit 127
  fi
  exec start-singleuser.sh "$@"
fi

args=()
password="${JUPYTER_PASSWORD:-${LABPASSWD:-${JUPYTERLAB_PW:-}}}"
unset JUPYTER_PASSWORD LABPASSWD JUPYTERLAB_PW
if [ -n "$password" ]; then
  hash_password='
import sys
secret = sys.stdin.read()
try:
    from jupyter_server.auth import passwd
except ImportError:
    from notebook.auth import passwd
print(passwd(secret))
'
  if ! hashed="$(printf '%s' "$password" | python -c "$hash_password")" || [ -z "$hashed" ]; then
    echo "[start-notebook] could not hash the password (is jupyter_server installed?); refusing to start" >&2
    exit 1
  fi
  args+=("--PasswordIdentityProvider.hashed_password=${hashed}")
  if [ -z "${JUPYTER_TOKEN:-}" ]; then
    args+=("--IdentityProvider.token=")
  fi
fi
unset password

# shellcheck disable=SC2086
exec start.sh jupyter "${DOCKER_STACKS_JUPYTER_CMD:-lab}" "${args[@]}" ${NOTEBOOK_ARGS:-} "$@"
