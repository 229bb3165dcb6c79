#!/bin/bash
# start.sh COMMAND [ARGS...]
#
# Container start-up following the docker-stacks runtime contract.
#
# Started as root (docker run --user root), it adapts the notebook user to the
# environment, then drops to that user:
#   NB_USER               rename the image's user (its home is reached as /home/$NB_USER)
#   NB_UID, NB_GID        change the user's uid and primary group, so files written to a
#                         bind mount belong to the host user (aliases: LABUID, LABGID)
#   NB_GROUP              name for a new group created for NB_GID (default: $NB_USER)
#   CHOWN_HOME=yes        chown $HOME to NB_UID:NB_GID (options in CHOWN_HOME_OPTS, e.g. -R)
#   CHOWN_EXTRA=a,b       chown these paths too (options in CHOWN_EXTRA_OPTS)
#   GRANT_SUDO=yes        let the user run sudo without a password
#   NB_UMASK              umask of the command
# Started as the user (the default), it only runs the hooks and the command.
#
# Hooks: files in /usr/local/bin/start-notebook.d run first (as whoever started the
# container), files in /usr/local/bin/before-notebook.d right before the command (as
# root when started as root). *.sh files are sourced (they may export variables),
# other executable files are run; a failing hook is logged and start-up goes on.
set -eu

log() {
  if [ -z "${JUPYTER_DOCKER_STACKS_QUIET:-}" ]; then
    printf '%s [start.sh] %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*" >&2
  fi
}

truthy() {
  case "${1:-}" in
    1 | yes | YES | Yes | true | TRUE | True | on | ON) return 0 ;;
    *) return 1 ;;
  esac
}

run_hooks() {
  local dir="$1" hook status
  [ -d "$dir" ] || return 0
  for hook in "$dir"/*; do
    [ -e "$hook" ] || continue
    case "$hook" in
      *.sh)
        log "hook: sourcing ${hook}"
        set +eu
        # shellcheck disable=SC1090
        source "$hook"
        status=$?
        set -eu
        ;;
      *)
        if [ ! -f "$hook" ] || [ ! -x "$hook" ]; then
          log "hook: ignoring ${hook} (neither *.sh nor an executable file)"
          continue
        fi
        log "hook: running ${hook}"
        status=0
        "$hook" || status=$?
        ;;
    esac
    if [ "$status" -ne 0 ]; then
      log "hook: ${hook} FAILED with exit status ${status}; continuing"
    fi
  done
}

# Short names some guides use.
if [ -n "${LABUID:-}" ]; then export NB_UID="$LABUID"; fi
if [ -n "${LABGID:-}" ]; then export NB_GID="$LABGID"; fi

if [ $# -eq 0 ]; then
  set -- bash
fi

# The user the image was built with (written by the nb-user fragment).
image_user=jovyan image_uid=1000 image_gid=100
if [ -r /etc/nb-user ]; then
  read -r image_user image_uid image_gid < /etc/nb-user
fi
export NB_USER="${NB_USER:-$image_user}" NB_UID="${NB_UID:-$image_uid}" NB_GID="${NB_GID:-$image_gid}"

run_hooks /usr/local/bin/start-notebook.d

if [ "$(id -u)" -eq 0 ]; then
  # The account to adapt: the image's user, or the one an earlier start of this container renamed.
  account=""
  for candidate in "$image_user" "$NB_USER"; do
    if id "$candidate" >/dev/null 2>&1; then account="$candidate"; break; fi
  done
  if [ -z "$account" ]; then
    account="$(getent passwd "$image_uid" | cut -d: -f1 || true)"
  fi
  if [ -z "$account" ]; then
    log "no account for ${image_user} (uid ${image_uid}); creating ${NB_USER}"
    useradd --no-log-init --no-create-home --home-dir "/home/${NB_USER}" --shell /bin/bash \
      --uid "$NB_UID" --gid "$image_gid" "$NB_USER"
    account="$NB_USER"
    mkdir -p "/home/${NB_USER}"
  fi
  real_home="$(getent passwd "$account" | cut -d: -f6)"

  if [ "$NB_GID" != "$(id -g "$account")" ]; then
    log "setting the primary group of ${account} to ${NB_GID}"
    if ! getent group "$NB_GID" >/dev/null; then
      groupadd --gid "$NB_GID" "${NB_GROUP:-$NB_USER}" 2>/dev/null \
        || groupadd --gid "$NB_GID" "group${NB_GID}"
    fi
    # Keep the image's group as a supplementary one: shared software (/opt/venv) is writable by it.
    usermod --gid "$NB_GID" --append --groups "$image_gid" "$account"
  fi
  if [ "$NB_UID" != "$(id -u "$account")" ]; then
    log "setting the uid of ${account} to ${NB_UID}"
    usermod --uid "$NB_UID" --non-unique "$account"
  fi

  if [ "$NB_USER" != "$account" ]; then
    log "renaming user ${account} to ${NB_USER}"
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

  if truthy "${CHOWN_HOME:-}"; then
    log "chown ${CHOWN_HOME_OPTS:+$CHOWN_HOME_OPTS }${NB_UID}:${NB_GID} ${HOME}"
    # shellcheck disable=SC2086
    chown ${CHOWN_HOME_OPTS:-} "${NB_UID}:${NB_GID}" "${HOME}/" || log "WARNING: chown of ${HOME} failed"
  fi
  if [ -n "${CHOWN_EXTRA:-}" ]; then
    IFS=',' read -ra extra_paths <<< "$CHOWN_EXTRA"
    for path in "${extra_paths[@]}"; do
      [ -n "$path" ] || continue
      log "chown ${CHOWN_EXTRA_OPTS:+$CHOWN_EXTRA_OPTS }${NB_UID}:${NB_GID} ${path}"
      # shellcheck disable=SC2086
      chown ${CHOWN_EXTRA_OPTS:-} "${NB_UID}:${NB_GID}" "$path" || log "WARNING: chown of ${path} failed"
    done
  fi

  rm -f /etc/sudoers.d/added-by-start-script
  if truthy "${GRANT_SUDO:-}"; then
    log "granting ${NB_USER} passwordless sudo"
    printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$NB_USER" > /etc/sudoers.d/added-by-start-script
    chmod 0440 /etc/sudoers.d/added-by-start-script
  fi

  run_hooks /usr/local/bin/before-notebook.d

  if [ -n "${NB_UMASK:-}" ]; then umask "$NB_UMASK"; fi
  if [ "$NB_UID" -eq 0 ]; then
    log "NB_UID=0: running as root: $*"
    exec "$@"
  fi
  log "running as ${NB_USER} (uid ${NB_UID}, gid ${NB_GID}): $*"
  export USER="$NB_USER" LOGNAME="$NB_USER"
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
      log "WARNING: ${variable}=${!variable} is ignored: changing the user needs 'docker run --user root'"
    fi
  done
  for variable in GRANT_SUDO CHOWN_HOME; do
    if truthy "${!variable:-}"; then
      log "WARNING: ${variable} is ignored: it needs 'docker run --user root'"
    fi
  done
  if [ -n "${CHOWN_EXTRA:-}" ]; then
    log "WARNING: CHOWN_EXTRA is ignored: it needs 'docker run --user root'"
  fi
  # An arbitrary uid (docker run --user 5000, OpenShift) gets a passwd entry, so tools that
  # look the user up work; /etc/passwd is group-writable for that.
  if ! id -un >/dev/null 2>&1; then
    if [ -w /etc/passwd ]; then
      name="$NB_USER"
      if getent passwd "$name" >/dev/null; then name="user$(id -u)"; fi
      log "adding ${name} (uid $(id -u)) to /etc/passwd"
      printf '%s:x:%s:%s:%s:%s:/bin/bash\n' "$name" "$(id -u)" "$(id -g)" "$name" "$HOME" >> /etc/passwd
    else
      log "WARNING: uid $(id -u) has no name and /etc/passwd is not writable"
    fi
  fi
  if [ ! -w "$HOME" ]; then
    log "WARNING: HOME (${HOME}) is not writable by uid $(id -u); start as root with CHOWN_HOME=yes or mount a writable folder"
  fi
  run_hooks /usr/local/bin/before-notebook.d
  if [ -n "${NB_UMASK:-}" ]; then umask "$NB_UMASK"; fi
  exec "$@"
fi
