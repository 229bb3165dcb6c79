# Installed by the s3-sync fragment as /usr/local/bin/before-notebook.d/50-s3-sync.sh;
# start.sh sources it right before it starts the command (after any user/uid changes).
#
# Without S3_SYNC_URL (or ALIYUN_OSS_BUCKET_FOLDER) it does nothing. With it, `s3-sync start` restores the synced
# folder from the bucket - the command waits for that - and leaves a watcher that
# pushes changes back, both as the notebook user. If the restore fails, start-up
# stops here (exit status 1) unless S3_SYNC_REQUIRED=no.
#
# The S3_SYNC_* (and ALIYUN_OSS_*) credentials are then removed from the environment of the command, so
# the server, its kernels and terminals do not inherit them (AWS_* variables are left
# alone: users pass those on purpose for their own code).
# ALIYUN_OSS_BUCKET_FOLDER (with ALIYUN_OSS_ACCESS_KEY_ID/_SECRET, _ENDPOINT, _REGION) is
# accepted in place of S3_SYNC_URL (and the rest); s3-sync maps them itself.
if [ -n "${S3_SYNC_URL:-}${ALIYUN_OSS_BUCKET_FOLDER:-}" ]; then
  if [ "$(id -u)" -eq 0 ] && [ "${NB_UID:-0}" != 0 ]; then
    if command -v setpriv >/dev/null 2>&1; then
      setpriv --reuid="$NB_UID" --regid="$NB_GID" --init-groups -- /usr/local/bin/s3-sync start --hold "$$"
    else
      sudo --preserve-env --set-home --user "$NB_USER" -- /usr/local/bin/s3-sync start --hold "$$"
    fi
  else
    /usr/local/bin/s3-sync start --hold "$$"
  fi || exit 1
  unset S3_SYNC_ACCESS_KEY_ID S3_SYNC_SECRET_ACCESS_KEY S3_SYNC_SESSION_TOKEN ALIYUN_OSS_ACCESS_KEY_ID ALIYUN_OSS_ACCESS_KEY_SECRET
fi
