#!/bin/bash
# Container start-up, compatible with the docker-stacks runtime contract.
# As root: rename/remap the notebook user (NB_USER, NB_UID, NB_GID), grant sudo
# (GRANT_SUDO), chown home/extra paths (CHOWN_HOME, CHOWN_EXTRA), run hooks,
# then drop to the user and exec the command. As the user: run hooks and exec.
set -e

_log() { [ "${JUPYTER_DOCKER_STACKS_QUIET:-}" ] || echo "[start] $*" >&2; }

# Blog-post aliases.
[ -n "${LABUID:-}" ] && : "${NB_UID:=$LABUID}" && export NB_UID="${LABUID}"
[ -n "${LABGID:-}" ] && export NB_GID="${LABGID}"

run_hooks() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  _log "running hooks in ${dir}"
  local f
  for f in "$dir"/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh)
        _log "sourcing ${f}"
        # shellcheck disable=SC1090
        source "$f" || _log "hook ${f} failed with status $? (continuing)"
        ;;
      *)
        if [ -x "$f" ]; then
          _log "running ${f}"
          "$f" || _log "hook ${f} failed with status $? (continuing)"
        else
          _log "ignoring ${f} (not executable, not *.sh)"
        fi
        ;;
    esac
  done
}

if [ $# -eq 0 ]; then
  set -- bash
fi
# The user the image was built with (written by the nb-user fragment).
read -r image_user image_uid image_gid < /etc/stacks-nb-user || { image_user=jovyan; image_uid=1000; image_gid=100; }

run_hooks /usr/local/bin/start-notebook.d

if [ "$(id -u)" = 0 ]; then
  # Rename the user (and move its home) when NB_USER differs from the image's user.
  : "${NB_USER:=$image_user}" "${NB_UID:=$image_uid}" "${NB_GID:=$image_gid}"
  current_user="$image_user"
  if [ "$NB_USER" != "$current_user" ] && id "$current_user" >/dev/null 2>&1; then
    _log "renaming user ${current_user} to ${NB_USER}"
    usermod --login "$NB_USER" --home "/home/${NB_USER}" --move-home "$current_user" 2>/dev/null \
      || usermod --login "$NB_USER" --home "/home/${NB_USER}" "$current_user"
    [ -d "/home/${NB_USER}" ] || mkdir -p "/home/${NB_USER}"
    [ -e "/home/${current_user}" ] || ln -s "/home/${NB_USER}" "/home/${current_user}"
  fi
  export HOME="/home/${NB_USER}"
  if [ "$NB_GID" != "$(id -g "$NB_USER")" ]; then
    _log "setting the group of ${NB_USER} to ${NB_GID}"
    getent group "$NB_GID" >/dev/null || groupadd --gid "$NB_GID" "${NB_GROUP:-${NB_USER}}"
    usermod --gid "$NB_GID" -a -G "$NB_GID,100" "$NB_USER"
  fi
  if [ "$NB_UID" != "$(id -u "$NB_USER")" ]; then
    _log "setting the uid of ${NB_USER} to ${NB_UID}"
    usermod --uid "$NB_UID" --non-unique "$NB_USER"
  fi
  if [ "${CHOWN_HOME:-}" = 1 ] || [ "${CHOWN_HOME:-}" = yes ]; then
    _log "chown ${HOME} to ${NB_UID}:${NB_GID}"
    # shellcheck disable=SC2086
    chown ${CHOWN_HOME_OPTS:-} "${NB_UID}:${NB_GID}" "$HOME"
  fi
  if [ -n "${CHOWN_EXTRA:-}" ]; then
    IFS=',' read -ra extra <<< "$CHOWN_EXTRA"
    for path in "${extra[@]}"; do
      _log "chown ${path} to ${NB_UID}:${NB_GID}"
      # shellcheck disable=SC2086
      chown ${CHOWN_EXTRA_OPTS:-} "${NB_UID}:${NB_GID}" "$path"
    done
  fi
  if [ "${GRANT_SUDO:-}" = 1 ] || [ "${GRANT_SUDO:-}" = yes ]; then
    _log "granting ${NB_USER} passwordless sudo"
    echo "${NB_USER} ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/notebook
    chmod 0440 /etc/sudoers.d/notebook
  fi
  run_hooks /usr/local/bin/before-notebook.d
  _log "running as ${NB_USER} (${NB_UID}:${NB_GID}): $*"
  exec setpriv --reuid="$NB_UID" --regid="$NB_GID" --init-groups \
    env HOME="$HOME" USER="$NB_USER" LOGNAME="$NB_USER" PATH="$PATH" "$@"
else
  if [ -n "${NB_UID:-}" ] && [ "$NB_UID" != "$(id -u)" ] || [ -n "${NB_GID:-}" ] && [ "$NB_GID" != "$(id -g)" ]; then
    _log "NB_UID/NB_GID need the container to start as root (docker run --user root); keeping $(id -u):$(id -g)"
  fi
  if [ "${GRANT_SUDO:-}" = 1 ] || [ "${GRANT_SUDO:-}" = yes ]; then
    _log "GRANT_SUDO needs the container to start as root (docker run --user root)"
  fi
  # Arbitrary UIDs (OpenShift style): give the running UID a passwd entry.
  if ! whoami >/dev/null 2>&1 && [ -w /etc/passwd ]; then
    echo "${NB_USER:-jovyan}:x:$(id -u):$(id -g):,,,:${HOME}:/bin/bash" >> /etc/passwd
  fi
  run_hooks /usr/local/bin/before-notebook.d
  exec "$@"
fi
