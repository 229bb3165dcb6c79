#!/bin/bash
# start.sh [COMMAND [ARGS...]]   (the image's ENTRYPOINT: tini -g -- start.sh)
#
# Container start-up following the docker-stacks runtime contract. It runs for every
# command the container is given (docker run IMAGE COMMAND, compose `command:`, a
# spawner's cmd); without one it starts bash. A command that is itself start.sh, or a
# start script calling it, is executed directly: start-up happens once per container.
#
# Started as root (docker run --user root), it adapts the notebook user to the
# environment, then drops to that user:
#   NB_USER               rename the image's user (its home is reached as /home/$NB_USER)
#   NB_UID, NB_GID        change the user's uid and primary group, so files written to a
#                         bind mount belong to the host user (aliases: LABUID, LABGID)
#   NB_USER=root NB_UID=0 NB_GID=0   run the command as root, HOME=/home/root
#   NB_GROUP              name for a new group created for NB_GID (default: $NB_USER)
#   CHOWN_HOME=yes        chown $HOME to NB_UID:NB_GID (options in CHOWN_HOME_OPTS, e.g. -R)
#   CHOWN_EXTRA=a,b       chown these paths too (options in CHOWN_EXTRA_OPTS)
#   GRANT_SUDO=yes        let the user run sudo without a password
# Either way:
#   NB_UMASK              umask of the command
#   JUPYTER_ENV_VARS_TO_UNSET=A,B   remove these variables (secrets) from the command's
#                         environment, after the hooks had them
#   JUPYTER_DOCKER_STACKS_QUIET=1   no informational log lines (warnings and errors stay)
# Started as the user (the default), it only runs the hooks and the command; a uid
# without a name (docker run --user 1010) is given the name NB_USER.
#
# Hooks (run-hooks.sh): /usr/local/bin/start-notebook.d first, as whoever started the
# container; /usr/local/bin/before-notebook.d right before the command (as root when
# started as root). *.sh files are sourced, other executable files are run; a failing
# hook is logged and start-up goes on.
set -eu

_log() {
  case "$*" in
    WARNING:* | ERROR:*) printf '%s\n' "$*" >&2 ;;
    *) if [ -z "${JUPYTER_DOCKER_STACKS_QUIET:-}" ]; then printf '%s\n' "$*" >&2; fi ;;
  esac
}

truthy() {
  case "${1:-}" in
    1 | yes | YES | Yes | true | TRUE | True | on | ON) return 0 ;;
    *) return 1 ;;
  esac
}

unset_requested_variables() {
  local name
  if [ -n "${JUPYTER_ENV_VARS_TO_UNSET:-}" ]; then
    for name in ${JUPYTER_ENV_VARS_TO_UNSET//,/ }; do
      _log "Unset ${name} due to JUPYTER_ENV_VARS_TO_UNSET"
      unset "$name"
    done
  fi
  unset JUPYTER_ENV_VARS_TO_UNSET
}

if [ $# -eq 0 ]; then
  set -- bash
fi

# Once per container: the entry point already ran start-up, this is its command.
if [ "${_START_SH_EXECUTED:-}" = 1 ]; then
  _log "WARNING: start.sh already ran as the entry point; it need not be part of the command"
  _log "Executing the command: $*"
  exec "$@"
fi
export _START_SH_EXECUTED=1
_log "Entered start.sh with args: $*"

# Short names some guides use.
if [ -n "${LABUID:-}" ]; then export NB_UID="$LABUID"; fi
if [ -n "${LABGID:-}" ]; then export NB_GID="$LABGID"; fi

# The user the image was built with (written by the nb-user fragment).
image_user=jovyan image_uid=1000 image_gid=100
if [ -r /etc/nb-user ]; then
  read -r image_user image_uid image_gid < /etc/nb-user
fi
export NB_USER="${NB_USER:-$image_user}" NB_UID="${NB_UID:-$image_uid}" NB_GID="${NB_GID:-$image_gid}"

# shellcheck source=run-hooks.sh
source /usr/local/bin/run-hooks.sh /usr/local/bin/start-notebook.d

if [ "$(id -u)" -eq 0 ]; then
  if [ "$NB_USER" = root ]; then
    # The root triplet: the command runs as root, in a home of its own.
    if [ "$NB_UID" != 0 ] && [ "$NB_UID" != "$image_uid" ]; then
      _log "WARNING: NB_UID=${NB_UID} is ignored: NB_USER=root runs as uid 0"
    fi
    if [ "$NB_GID" != 0 ] && [ "$NB_GID" != "$image_gid" ]; then
      _log "WARNING: NB_GID=${NB_GID} is ignored: NB_USER=root runs as gid 0"
    fi
    export NB_UID=0 NB_GID=0
    if [ "$(getent passwd root | cut -d: -f6)" != /home/root ]; then
      _log "Setting the home of root to /home/root"
      # (usermod refuses: root runs this script)
      sed -i -E 's#^(root:[^:]*:0:0:[^:]*:)[^:]*:#\1/home/root:#' /etc/passwd
    fi
    if [ ! -e /home/root ]; then
      mkdir -p /home/root && cp -a /etc/skel/. /home/root/ 2>/dev/null || true
    fi
    image_home="/home/${image_user}"
    if [ "${PWD#"$image_home"}" != "$PWD" ]; then
      cd /home/root
    fi
    export HOME=/home/root
  else
    # The account to adapt: the image's user, or the one an earlier start of this container renamed.
    account=""
    for candidate in "$image_user" "$NB_USER"; do
      if id "$candidate" >/dev/null 2>&1; then account="$candidate"; break; fi
    done
    if [ -z "$account" ]; then
      account="$(getent passwd "$image_uid" | cut -d: -f1 || true)"
    fi
    if [ -z "$account" ]; then
      _log "No account for ${image_user} (uid ${image_uid}); creating ${NB_USER}"
      useradd --no-log-init --no-create-home --home-dir "/home/${NB_USER}" --shell /bin/bash \
        --uid "$NB_UID" --gid "$image_gid" "$NB_USER"
      account="$NB_USER"
      mkdir -p "/home/${NB_USER}"
    fi
    real_home="$(getent passwd "$account" | cut -d: -f6)"

    if [ "$NB_GID" != "$(id -g "$account")" ]; then
      _log "Setting the primary group of ${account} to ${NB_GID}"
      if ! getent group "$NB_GID" >/dev/null; then
        groupadd --gid "$NB_GID" "${NB_GROUP:-$NB_USER}" 2>/dev/null \
          || groupadd --gid "$NB_GID" "group${NB_GID}"
      fi
      # Keep the image's group as a supplementary one: shared software (/opt/venv) is writable by it.
      usermod --gid "$NB_GID" --append --groups "$image_gid" "$account"
    fi
    if [ "$NB_UID" != "$(id -u "$account")" ]; then
      _log "Setting the uid of ${account} to ${NB_UID}"
      usermod --uid "$NB_UID" --non-unique "$account"
    fi

    if [ "$NB_USER" != "$account" ]; then
      _log "Renaming user ${account} to ${NB_USER}"
      if [ ! -e "/home/${NB_USER}" ]; then
        ln -s "$real_home" "/home/${NB_USER}"
      fi
      usermod --login "$NB_USER" --home "/home/${NB_USER}" "$account"
      if [ "${PWD#"$real_home"}" != "$PWD" ]; then
        cd "/home/${NB_USER}${PWD#"$real_home"}" 2>/dev/null || cd "/home/${NB_USER}"
      fi
    fi
    export HOME="/home/${NB_USER}"
    if [ ! -e "$HOME" ]; then
      mkdir -p "$HOME" && chown "$NB_UID:$NB_GID" "$HOME"
    fi
  fi

  if truthy "${CHOWN_HOME:-}"; then
    _log "chown ${CHOWN_HOME_OPTS:+$CHOWN_HOME_OPTS }${NB_UID}:${NB_GID} ${HOME}"
    # shellcheck disable=SC2086
    chown ${CHOWN_HOME_OPTS:-} "${NB_UID}:${NB_GID}" "${HOME}/" || _log "WARNING: chown of ${HOME} failed"
  fi
  if [ -n "${CHOWN_EXTRA:-}" ]; then
    IFS=',' read -ra extra_paths <<< "$CHOWN_EXTRA"
    for path in "${extra_paths[@]}"; do
      [ -n "$path" ] || continue
      _log "chown ${CHOWN_EXTRA_OPTS:+$CHOWN_EXTRA_OPTS }${NB_UID}:${NB_GID} ${path}"
      # shellcheck disable=SC2086
      chown ${CHOWN_EXTRA_OPTS:-} "${NB_UID}:${NB_GID}" "$path" || _log "WARNING: chown of ${path} failed"
    done
  fi

  rm -f /etc/sudoers.d/added-by-start-script
  if truthy "${GRANT_SUDO:-}" && [ "$NB_UID" != 0 ]; then
    _log "Granting ${NB_USER} passwordless sudo"
    printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$NB_USER" > /etc/sudoers.d/added-by-start-script
    chmod 0440 /etc/sudoers.d/added-by-start-script
  fi

  # shellcheck source=run-hooks.sh
  source /usr/local/bin/run-hooks.sh /usr/local/bin/before-notebook.d
  unset_requested_variables

  if [ -n "${NB_UMASK:-}" ]; then umask "$NB_UMASK"; fi
  export USER="$NB_USER" LOGNAME="$NB_USER"
  if [ "$NB_UID" -eq 0 ]; then
    _log "Running as root (NB_UID=0): $*"
    exec "$@"
  fi
  _log "Running as ${NB_USER} (uid ${NB_UID}, gid ${NB_GID}): $*"
  if command -v setpriv >/dev/null 2>&1; then
    exec setpriv --reuid="$NB_UID" --regid="$NB_GID" --init-groups -- "$@"
  fi
  exec sudo --preserve-env --set-home --user "$NB_USER" -- "$@"
else
  # Started as a non-root user: nothing above can be changed, only reported.
  # (Only values someone set: the image's own defaults are no request.)
  for variable in NB_USER NB_UID NB_GID; do
    case "$variable" in
      NB_USER) current="$(id -un 2>/dev/null || true)" default="$image_user" ;;
      NB_UID) current="$(id -u)" default="$image_uid" ;;
      NB_GID) current="$(id -g)" default="$image_gid" ;;
    esac
    if [ "${!variable}" != "$default" ] && [ "${!variable}" != "$current" ]; then
      _log "WARNING: ${variable}=${!variable} is ignored: changing the user needs 'docker run --user root'"
    fi
  done
  for variable in GRANT_SUDO CHOWN_HOME; do
    if truthy "${!variable:-}"; then
      _log "WARNING: ${variable} is ignored: it needs 'docker run --user root'"
    fi
  done
  if [ -n "${CHOWN_EXTRA:-}" ]; then
    _log "WARNING: CHOWN_EXTRA is ignored: it needs 'docker run --user root'"
  fi
  # An arbitrary uid (docker run --user 1010, OpenShift) gets a passwd entry named NB_USER,
  # as in docker-stacks, so tools that look the user up work; the image's own entry of that
  # name is renamed (its name spelled backwards). /etc/passwd is group-writable for that.
  if ! id -un >/dev/null 2>&1; then
    if [ -w /etc/passwd ]; then
      if getent passwd "$NB_USER" >/dev/null; then
        old=""
        for ((i = ${#NB_USER} - 1; i >= 0; i--)); do old+="${NB_USER:i:1}"; done
        [ "$old" != "$NB_USER" ] || old="${NB_USER}-image"
        _log "Renaming the image's ${NB_USER} entry to ${old} ($(id -u "$NB_USER"):$(id -g "$NB_USER"))"
        sed -e "s/^${NB_USER}:/${old}:/" /etc/passwd > /tmp/passwd.start
      else
        cat /etc/passwd > /tmp/passwd.start
      fi
      printf '%s:x:%s:%s:%s:%s:/bin/bash\n' "$NB_USER" "$(id -u)" "$(id -g)" "$NB_USER" "$HOME" >> /tmp/passwd.start
      cat /tmp/passwd.start > /etc/passwd
      rm -f /tmp/passwd.start
      _log "Added ${NB_USER} (uid $(id -u), gid $(id -g)) to /etc/passwd"
    else
      _log "WARNING: uid $(id -u) has no name and /etc/passwd is not writable"
    fi
  fi
  if [ ! -w "$HOME" ]; then
    _log "WARNING: HOME (${HOME}) is not writable by uid $(id -u); start as root with CHOWN_HOME=yes or mount a writable folder"
  fi
  # shellcheck source=run-hooks.sh
  source /usr/local/bin/run-hooks.sh /usr/local/bin/before-notebook.d
  unset_requested_variables
  if [ -n "${NB_UMASK:-}" ]; then umask "$NB_UMASK"; fi
  _log "Executing the command: $*"
  exec "$@"
fi
