#!/bin/bash
# Start the JupyterHub single-user server (used when JupyterHub spawns this image).
set -e
exec start.sh jupyterhub-singleuser ${NOTEBOOK_ARGS:-} "$@"
