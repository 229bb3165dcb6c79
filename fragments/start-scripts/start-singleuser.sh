#!/bin/bash
# start-singleuser.sh [ARGS...]   (also installed as start-singleuser.py)
# Starts the JupyterHub single-user server through start.sh; JupyterHub passes
# its settings in JUPYTERHUB_* variables. NOTEBOOK_ARGS are added as with
# start-notebook.sh.
set -euo pipefail
unset JUPYTER_PASSWORD LABPASSWD JUPYTERLAB_PW
# shellcheck disable=SC2086
exec start.sh jupyterhub-singleuser ${NOTEBOOK_ARGS:-} "$@"
