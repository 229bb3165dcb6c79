#!/bin/bash
# start-singleuser.sh [ARGS...]   (also installed as start-singleuser.py)
# Starts the JupyterHub single-user server, after start.sh (the entry point; called
# here only when the entry point was replaced). JupyterHub passes its settings in
# JUPYTERHUB_* variables. NOTEBOOK_ARGS are added as with start-notebook.sh.
set -euo pipefail
unset JUPYTER_PASSWORD LABPASSWD JUPYTERLAB_PW
if [ "${_START_SH_EXECUTED:-}" != 1 ]; then
  exec start.sh "$0" "$@"
fi
# shellcheck disable=SC2086
exec jupyterhub-singleuser ${NOTEBOOK_ARGS:-} "$@"
