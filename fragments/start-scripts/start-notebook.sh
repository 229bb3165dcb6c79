#!/bin/bash
# start-notebook.sh [SERVER ARGS...]   (also installed as start-notebook.py)
#
# Starts `jupyter ${DOCKER_STACKS_JUPYTER_CMD:-lab}` with the given arguments (plus
# NOTEBOOK_ARGS), after start.sh (the entry point; called here only when the entry
# point was replaced). When JupyterHub spawned the container (JUPYTERHUB_API_TOKEN is
# set) it starts the single-user server instead. RESTARTABLE=yes starts the server
# again whenever it exits (a crash, or `kill` from a terminal), inside the same
# container.
#
# Authentication: the server reads JUPYTER_TOKEN from the environment itself.
# A password in JUPYTER_PASSWORD (or LABPASSWD, JUPYTERLAB_PW) is hashed here
# and only the hash reaches the server; the plain text leaves the environment
# before the server starts and is never written or printed. With a password
# and no JUPYTER_TOKEN, the password alone protects the server.
set -euo pipefail

if [ -n "${JUPYTERHUB_API_TOKEN:-}" ]; then
  echo "JUPYTERHUB_API_TOKEN is set: starting the JupyterHub single-user server" >&2
  if ! command -v jupyterhub-singleuser >/dev/null 2>&1; then
    echo "ERROR: jupyterhub-singleuser is not installed in this image (add the jupyterhub-singleuser fragment)" >&2
    exit 127
  fi
  exec start-singleuser.sh "$@"
fi

if [ "${_START_SH_EXECUTED:-}" != 1 ]; then
  exec start.sh "$0" "$@"
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
    echo "ERROR: could not hash the password (is jupyter_server installed?); refusing to start" >&2
    exit 1
  fi
  args+=("--PasswordIdentityProvider.hashed_password=${hashed}")
  if [ -z "${JUPYTER_TOKEN:-}" ]; then
    args+=("--IdentityProvider.token=")
  fi
fi
unset password

# shellcheck disable=SC2206
command=(jupyter "${DOCKER_STACKS_JUPYTER_CMD:-lab}" "${args[@]}" ${NOTEBOOK_ARGS:-} "$@")
if [ "${RESTARTABLE:-}" = yes ]; then
  starts=0
  while true; do
    starts=$((starts + 1))
    if [ -z "${JUPYTER_DOCKER_STACKS_QUIET:-}" ]; then
      echo "RESTARTABLE=yes: starting the server (start ${starts})" >&2
    fi
    status=0
    "${command[@]}" || status=$?
    echo "WARNING: the server exited with status ${status}; starting it again (RESTARTABLE=yes)" >&2
    sleep 1
  done
fi
exec "${command[@]}"
