#!/bin/bash
# Start the Jupyter server (DOCKER_STACKS_JUPYTER_CMD, default "lab") through start.sh,
# or the JupyterHub single-user server when JupyterHub started this container.
set -e
if [ -n "${JUPYTERHUB_API_TOKEN:-}" ]; then
  exec start-singleuser.sh "$@"
fi
args=()
password="${JUPYTER_PASSWORD:-${LABPASSWD:-${JUPYTERLAB_PW:-}}}"
if [ -n "$password" ]; then
  # Hash at start; the plain text is never written to disk nor passed on.
  hashed="$(JUPYTER_PASSWORD_INPUT="$password" python -c 'import os; from jupyter_server.auth import passwd; print(passwd(os.environ["JUPYTER_PASSWORD_INPUT"]))')"
  args+=("--PasswordIdentityProvider.hashed_password=${hashed}")
  [ -n "${JUPYTER_TOKEN:-}" ] || args+=("--IdentityProvider.token=")
fi
unset JUPYTER_PASSWORD LABPASSWD JUPYTERLAB_PW
exec start.sh jupyter "${DOCKER_STACKS_JUPYTER_CMD:-lab}" "${args[@]}" ${NOTEBOOK_ARGS:-} "$@"
