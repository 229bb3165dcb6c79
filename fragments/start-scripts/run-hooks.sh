#!/bin/bash
# run-hooks.sh DIRECTORY   (docker-stacks name and place: /usr/local/bin/run-hooks.sh)
#
# Meant to be sourced: `source /usr/local/bin/run-hooks.sh /usr/local/bin/before-notebook.d`.
# Goes through DIRECTORY in name order: *.sh files are sourced (so they may export
# variables for the command), other executable files are run, anything else is
# skipped with a note. A failing hook is logged and the next one runs. A sourced hook
# that calls `exit` ends the start-up on purpose (the s3-sync hook does when a
# restore fails). Executed instead of sourced, it runs the hooks all the same.

# The log helper of start.sh, for when this file is used on its own.
if ! declare -F _log >/dev/null; then
  _log() {
    case "$*" in
      WARNING:* | ERROR:*) printf '%s\n' "$*" >&2 ;;
      *) if [ -z "${JUPYTER_DOCKER_STACKS_QUIET:-}" ]; then printf '%s\n' "$*" >&2; fi ;;
    esac
  }
fi

_run_hooks() {
  local dir="${1:-}" hook status flags
  if [ $# -ne 1 ]; then
    _log "ERROR: run-hooks.sh takes exactly one directory"
    return 1
  fi
  if [ ! -d "$dir" ]; then
    _log "ERROR: ${dir} is not a directory"
    return 1
  fi
  _log "Running hooks in: ${dir} as uid: $(id -u) gid: $(id -g)"
  for hook in "$dir"/*; do
    [ -e "$hook" ] || continue
    case "$hook" in
      *.sh)
        _log "Sourcing shell script: ${hook}"
        flags="$-"
        set +eu  # a hook is written for a plain shell
        # shellcheck disable=SC1090
        source "$hook"
        status=$?
        case "$flags" in *e*) set -e ;; esac
        case "$flags" in *u*) set -u ;; esac
        ;;
      *)
        if [ ! -f "$hook" ] || [ ! -x "$hook" ]; then
          _log "Ignoring non-executable: ${hook}"
          continue
        fi
        _log "Running executable: ${hook}"
        status=0
        "$hook" || status=$?
        ;;
    esac
    if [ "$status" -ne 0 ]; then
      _log "WARNING: ${hook} has failed with exit status ${status}, continuing execution"
    fi
  done
  _log "Done running hooks in: ${dir}"
}

_run_hooks "$@"
