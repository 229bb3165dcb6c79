#!/opt/s3sync/bin/python3 -I
"""s3-sync: keep a folder of a container in an S3-compatible bucket.

Containers on many hosts lose their files when they stop. With S3_SYNC_URL set,
`s3-sync start` (run by start.sh from before-notebook.d) restores the folder from
the bucket before the server starts, then leaves a watcher (inotify) in the
background that uploads changed files and deletes removed ones within seconds,
and flushes what is pending when the container is stopped (SIGTERM).

Settings are environment variables only (docs/persistence.md lists them). The
credentials are read from the environment and handed to botocore in memory:
they are never written to a file and never printed; every log line passes a
filter that masks them.

The tool runs from its own environment (/opt/s3sync) under `python -I`, so
PYTHONPATH, user site-packages and whatever users pip-install into the
notebook environment cannot change what it imports.
"""
from __future__ import annotations

import argparse
import fnmatch
import logging
import mimetypes
import os
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

VERSION = "1.0.0"
LOG = logging.getLogger("s3sync")
TRUE = {"1", "yes", "true", "on"}
FALSE = {"0", "no", "false", "off", ""}
#: Never synced: editors' and Jupyter's scratch files, caches, and this tool's own temporary files.
DEFAULT_EXCLUDE = (".ipynb_checkpoints", "__pycache__", ".~*", "*.swp", "*.swx", ".Trash-*", ".s3sync-*")
#: How long a file keeps changing before it is uploaded anyway (a log written to without pause).
MAX_WAIT = 30.0
#: Stores that only accept bucket.endpoint host names (botocore's "auto" uses path style for any custom endpoint).
VIRTUAL_ONLY = (".aliyuncs.com", ".myqcloud.com", ".myhuaweicloud.com")


class SettingsError(Exception):
    """A variable has a value the tool cannot use; the message names the variable, never a secret."""


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    bucket: str
    prefix: str  # "" or "folder/" (always ends with a slash)
    endpoint: str | None
    region: str
    addressing: str
    signature: str
    path: Path
    debounce: float
    rescan: float
    delete: bool
    required: bool
    max_size: int | None
    exclude: tuple[str, ...]
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, rel: str) -> str:
        return self.prefix + rel


#: Variables other platforms set for the same purpose -> ours; ours win when both are set.
#: Aliyun's GPU cloud passes its OSS persistence this way (bucket/folder, key pair, endpoint, region).
ALIASES = {
    "ALIYUN_OSS_BUCKET_FOLDER": "S3_SYNC_URL",
    "ALIYUN_OSS_ACCESS_KEY_ID": "S3_SYNC_ACCESS_KEY_ID",
    "ALIYUN_OSS_ACCESS_KEY_SECRET": "S3_SYNC_SECRET_ACCESS_KEY",
    "ALIYUN_OSS_ENDPOINT": "S3_SYNC_ENDPOINT",
    "ALIYUN_OSS_REGION": "S3_SYNC_REGION",
}


def apply_aliases(environ: dict | None = None) -> None:
    """Fill S3_SYNC_* from the alias variables: `bucket/folder` or `oss://bucket/folder` becomes
    s3://bucket/folder, a region `oss-cn-hangzhou` becomes cn-hangzhou (and one is read from an
    `oss-<region>[-internal].aliyuncs.com` endpoint when no region is given)."""
    env = os.environ if environ is None else environ
    for alias, ours in ALIASES.items():
        value = env.get(alias, "").strip()
        if not value or env.get(ours, "").strip():
            continue
        if ours == "S3_SYNC_URL":
            scheme, sep, rest = value.partition("://")
            value = "s3://" + (rest if sep and scheme in ("oss", "s3") else value).lstrip("/")
        elif ours == "S3_SYNC_REGION" and value.startswith("oss-"):
            value = value[len("oss-"):]
        env[ours] = value
    if not env.get("S3_SYNC_REGION", "").strip() and env.get("ALIYUN_OSS_ENDPOINT"):
        host = urlsplit(env["ALIYUN_OSS_ENDPOINT"] if "://" in env["ALIYUN_OSS_ENDPOINT"] else "//" + env["ALIYUN_OSS_ENDPOINT"]).hostname or ""
        labels = host.split(".")
        region = next((label[len("oss-"):] for label in labels if label.startswith("oss-")), "")
        if region and host.endswith(".aliyuncs.com"):
            env["S3_SYNC_REGION"] = region.removesuffix("-internal")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _flag(name: str, default: bool) -> bool:
    value = _env(name).lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise SettingsError(f"{name} must be yes or no (got {value!r})")


def _seconds(name: str, default: float) -> float:
    value = _env(name)
    try:
        seconds = float(value) if value else default
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds (got {value!r})") from None
    if seconds < 0:
        raise SettingsError(f"{name} must not be negative (got {value!r})")
    return seconds


def _size(name: str) -> int | None:
    value = _env(name).upper().removesuffix("B")
    if not value or value == "0":
        return None
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    factor = units.get(value[-1:], 1)
    try:
        return int(float(value[:-1] if value[-1:] in units else value) * factor)
    except ValueError:
        raise SettingsError(f"{name} must be a size such as 500M or 2G (got {os.environ[name]!r})") from None


def parse_url(url: str) -> tuple[str, str]:
    """s3://bucket/folder -> ("bucket", "folder/"). A URL carrying credentials is refused
    without being repeated, so a secret put there by mistake does not reach the log."""
    if "@" in url:
        raise SettingsError("S3_SYNC_URL must not contain credentials (user:secret@); "
                            "pass them in S3_SYNC_ACCESS_KEY_ID and S3_SYNC_SECRET_ACCESS_KEY")
    if not url.startswith("s3://"):
        raise SettingsError(f"S3_SYNC_URL must look like s3://bucket/folder (got {url!r})")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket or any(c in bucket for c in " \\?#"):
        raise SettingsError(f"S3_SYNC_URL has no valid bucket name (got {url!r})")
    prefix = "/".join(part for part in prefix.split("/") if part)
    if any(part in (".", "..") for part in prefix.split("/")):
        raise SettingsError(f"S3_SYNC_URL must not contain . or .. folders (got {url!r})")
    return bucket, prefix + "/" if prefix else ""


def load_settings() -> Settings:
    bucket, prefix = parse_url(_env("S3_SYNC_URL"))
    endpoint = _env("S3_SYNC_ENDPOINT") or None
    if endpoint and "@" in endpoint:
        raise SettingsError("S3_SYNC_ENDPOINT must not contain credentials (user:secret@)")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        endpoint = "https://" + endpoint
    addressing = _env("S3_SYNC_ADDRESSING", "auto").lower()
    if addressing not in ("auto", "path", "virtual"):
        raise SettingsError(f"S3_SYNC_ADDRESSING must be auto, path or virtual (got {addressing!r})")
    host = (urlsplit(endpoint).hostname or "") if endpoint else ""
    if addressing == "auto" and host.endswith(VIRTUAL_ONLY):
        addressing = "virtual"
    signature = _env("S3_SYNC_SIGNATURE", "s3v4").lower()
    if signature not in ("s3v4", "s3"):
        raise SettingsError(f"S3_SYNC_SIGNATURE must be s3v4 or s3 (got {signature!r})")
    home = Path(os.environ.get("HOME") or Path.home())
    path = Path(os.path.expanduser(_env("S3_SYNC_PATH") or "work"))
    extra = tuple(p.strip() for p in _env("S3_SYNC_EXCLUDE").split(",") if p.strip())
    return Settings(
        bucket=bucket,
        prefix=prefix,
        endpoint=endpoint,
        region=_env("S3_SYNC_REGION") or _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or "us-east-1",
        addressing=addressing,
        signature=signature,
        path=path if path.is_absolute() else home / path,
        debounce=_seconds("S3_SYNC_DEBOUNCE", 2.0),
        rescan=_seconds("S3_SYNC_RESCAN", 300.0),
        delete=_flag("S3_SYNC_DELETE", True),
        required=_flag("S3_SYNC_REQUIRED", True),
        max_size=_size("S3_SYNC_MAX_SIZE"),
        exclude=DEFAULT_EXCLUDE + extra,
        access_key=_env("S3_SYNC_ACCESS_KEY_ID") or None,
        secret_key=os.environ.get("S3_SYNC_SECRET_ACCESS_KEY") or None,
        session_token=os.environ.get("S3_SYNC_SESSION_TOKEN") or None,
    )


# --- logging that cannot print a secret ------------------------------------------------------


def mask(value: str) -> str:
    """An access key id recognisable by its ends, or nothing of it when it is short."""
    return value[:4] + "****" + value[-2:] if len(value) >= 12 else "****"


class Redactor(logging.Filter):
    """Replaces every known secret in a record's final text; added to the one handler all logs pass."""

    def __init__(self) -> None:
        super().__init__()
        self.replacements: dict[str, str] = {}

    def add(self, secret: str | None, shown: str = "****") -> None:
        if secret and len(secret) >= 4:
            self.replacements[secret] = shown

    def clean(self, text: str) -> str:
        for secret, shown in self.replacements.items():
            text = text.replace(secret, shown)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = self.clean(text), None
        return True


REDACTOR = Redactor()


class _Format(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else record.levelname + ": "
        return f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%SZ')} [s3-sync] {level}{record.getMessage()}"


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(REDACTOR)
    handler.setFormatter(_Format())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    level = _env("S3_SYNC_LOG", "info").upper()
    LOG.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    for secret in ("S3_SYNC_SECRET_ACCESS_KEY", "S3_SYNC_SESSION_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        REDACTOR.add(os.environ.get(secret))
    for key_id in ("S3_SYNC_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"):
        REDACTOR.add(os.environ.get(key_id), mask(os.environ.get(key_id) or ""))


# --- the bucket ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteObject:
    size: int
    mtime_ns: int  # from the `mtime` metadata when known (see Bucket.mtime), else LastModified


def _parse_mtime(value: str | None) -> int | None:
    """rclone's `mtime` metadata ("1700000000.123456789", seconds) as nanoseconds."""
    if not value:
        return None
    seconds, _, fraction = value.strip().partition(".")
    try:
        return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)
    except ValueError:
        return None


def _format_mtime(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _ns(when: datetime) -> int:
    return int(when.replace(tzinfo=when.tzinfo or timezone.utc).timestamp()) * 1_000_000_000


class Bucket:
    """The folder's objects in the bucket: one key per file, modification time and mode in
    metadata (the `mtime` key is the one rclone writes, so both tools agree on times)."""

    def __init__(self, settings: Settings):
        import boto3
        from botocore.config import Config

        self.settings = settings
        if settings.access_key and settings.secret_key:
            session = boto3.session.Session(aws_access_key_id=settings.access_key,
                                            aws_secret_access_key=settings.secret_key,
                                            aws_session_token=settings.session_token)
        else:
            session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise SettingsError("no credentials: set S3_SYNC_ACCESS_KEY_ID and S3_SYNC_SECRET_ACCESS_KEY "
                                "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        frozen = credentials.get_frozen_credentials()
        REDACTOR.add(frozen.secret_key)
        REDACTOR.add(frozen.token)
        REDACTOR.add(frozen.access_key, mask(frozen.access_key or ""))
        self.key_id = mask(frozen.access_key or "")
        # Checksums only where the API requires them: the trailing checksums botocore adds by
        # default (aws-chunked uploads) are refused by several S3-compatible stores.
        config = Config(signature_version=settings.signature, region_name=settings.region,
                        s3={"addressing_style": settings.addressing},
                        retries={"max_attempts": 5, "mode": "standard"},
                        connect_timeout=10, read_timeout=60,
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
        self.client = session.client("s3", endpoint_url=settings.endpoint, config=config)

    def list(self) -> dict[str, RemoteObject]:
        """Every object under the prefix, by path relative to it (folder markers left out)."""
        found: dict[str, RemoteObject] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=self.settings.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                rel = item["Key"][len(self.settings.prefix):]
                if rel and not rel.endswith("/"):
                    found[rel] = RemoteObject(item["Size"], _ns(item["LastModified"]))
        return found

    def mtime(self, rel: str, fallback: int) -> int:
        head = self.client.head_object(Bucket=self.settings.bucket, Key=self.settings.key(rel))
        return _parse_mtime(head.get("Metadata", {}).get("mtime")) or fallback

    def download(self, rel: str, target: Path, fallback_mtime: int) -> None:
        """Into a temporary file next to the target, renamed when complete: never a half file."""
        response = self.client.get_object(Bucket=self.settings.bucket, Key=self.settings.key(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".s3sync-", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    out.write(chunk)
            metadata = response.get("Metadata", {})
            mode = metadata.get("mode", "")
            os.chmod(temporary, (int(mode, 8) & 0o777 | 0o600) if mode.isdigit() else 0o644)
            mtime = _parse_mtime(metadata.get("mtime")) or fallback_mtime
            os.utime(temporary, ns=(mtime, mtime))
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def upload(self, rel: str, source: Path, info: os.stat_result) -> None:
        from boto3.s3.transfer import TransferConfig

        extra = {"Metadata": {"mtime": _format_mtime(info.st_mtime_ns), "mode": f"{stat.S_IMODE(info.st_mode):04o}"},
                 "ContentType": mimetypes.guess_type(rel)[0] or "application/octet-stream"}
        self.client.upload_file(str(source), self.settings.bucket, self.settings.key(rel), ExtraArgs=extra,
                                Config=TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20))

    def delete(self, rel: str) -> None:
        # One request per key: DeleteObjects needs a Content-MD5 some stores want and botocore no longer sends.
        self.client.delete_object(Bucket=self.settings.bucket, Key=self.settings.key(rel))


# --- the local folder ------------------------------------------------------------------------


class Folder:
    """Paths relative to the synced folder, with the exclusion patterns applied to every component."""

    def __init__(self, root: Path, exclude: tuple[str, ...]):
        self.root = root
        self.exclude = exclude

    def excluded(self, rel: str) -> bool:
        parts = PurePosixPath(rel).parts
        return any(fnmatch.fnmatchcase(part, pattern) for part in parts for pattern in self.exclude) or \
            any(fnmatch.fnmatchcase(rel, pattern) for pattern in self.exclude if "/" in pattern)

    def files(self, below: str = "") -> dict[str, os.stat_result]:
        """Regular files under `below` (symbolic links and special files are not synced)."""
        found: dict[str, os.stat_result] = {}
        start = self.root / below if below else self.root
        for directory, dirs, names in os.walk(start):
            base = os.path.relpath(directory, self.root)
            base = "" if base == "." else base + "/"
            dirs[:] = [d for d in dirs if not self.excluded(base + d)]
            for name in names:
                rel = base + name
                if self.excluded(rel):
                    continue
                try:
                    info = os.lstat(self.root / rel)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[rel] = info
        return found


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _valid_rel(rel: str) -> bool:
    parts = rel.split("/")
    return not rel.startswith("/") and all(part not in ("", ".", "..") for part in parts)


# --- synchronisation -------------------------------------------------------------------------


class Sync:
    """What the bucket holds for each file (`known`: size and mtime as last seen or written)
    and the operations that keep it equal to the folder."""

    def __init__(self, settings: Settings, bucket: Bucket):
        self.settings = settings
        self.bucket = bucket
        self.folder = Folder(settings.path, settings.exclude)
        self.known: dict[str, tuple[int, int]] = {}
        self.too_large: set[tuple[str, int]] = set()

    def restore(self) -> None:
        """Bucket -> folder. Missing files are downloaded; a file both sides have but that differs
        is taken from the side modified last (the other copy is replaced). Nothing is deleted."""
        started = time.monotonic()
        self.settings.path.mkdir(parents=True, exist_ok=True)
        remote = self.bucket.list()
        downloaded = kept = size = 0
        for rel, obj in sorted(remote.items()):
            if not _valid_rel(rel) or self.folder.excluded(rel):
                LOG.debug("not restoring %s (excluded or not a valid path)", rel)
                continue
            target = self.settings.path / rel
            try:
                local = os.lstat(target)
            except FileNotFoundError:
                local = None
            if local is not None and not stat.S_ISREG(local.st_mode):
                LOG.warning("not restoring %s: a folder or link of that name exists here", rel)
                continue
            if local is None:
                self.bucket.download(rel, target, obj.mtime_ns)
            else:
                mtime = self.bucket.mtime(rel, obj.mtime_ns)
                self.known[rel] = (obj.size, mtime)
                if (local.st_size, local.st_mtime_ns) == (obj.size, mtime):
                    continue
                if local.st_mtime_ns >= mtime:
                    LOG.info("keeping the local %s: changed after the bucket's copy, which it will replace", rel)
                    kept += 1
                    continue
                LOG.info("replacing the local %s with the bucket's newer copy", rel)
                self.bucket.download(rel, target, mtime)
            info = os.lstat(target)
            self.known[rel] = (info.st_size, info.st_mtime_ns)
            downloaded += 1
            size += info.st_size
        LOG.info("restored %d file(s), %s, from %s into %s in %.1f s%s", downloaded, _human(size), self.settings.url,
                 self.settings.path, time.monotonic() - started, f"; {kept} newer local file(s) kept" if kept else "")

    def push(self, rel: str, info: os.stat_result) -> bool:
        """Upload one file if it differs from what the bucket has; False if it changed meanwhile."""
        if self.known.get(rel) == (info.st_size, info.st_mtime_ns):
            return True
        limit = self.settings.max_size
        if limit is not None and info.st_size > limit:
            if (rel, info.st_size) not in self.too_large:
                self.too_large.add((rel, info.st_size))
                LOG.warning("not uploading %s: %s is over S3_SYNC_MAX_SIZE", rel, _human(info.st_size))
            return True
        self.bucket.upload(rel, self.settings.path / rel, info)
        self.known[rel] = (info.st_size, info.st_mtime_ns)
        LOG.info("uploaded %s (%s)", rel, _human(info.st_size))
        after = os.lstat(self.settings.path / rel)
        return (after.st_size, after.st_mtime_ns) == (info.st_size, info.st_mtime_ns)

    def remove(self, rel: str) -> None:
        """The file `rel`, or everything known below the folder `rel`, is gone locally."""
        gone = [k for k in self.known if k == rel or k.startswith(rel + "/")]
        for key in sorted(gone):
            if (self.settings.path / key).is_file():
                continue
            if self.settings.delete:
                self.bucket.delete(key)
                LOG.info("deleted %s", key)
            del self.known[key]

    def scan(self) -> None:
        """Folder -> bucket for everything: changed files uploaded, vanished ones deleted."""
        files = self.folder.files()
        for rel, info in sorted(files.items()):
            self.push(rel, info)
        for rel in sorted(set(self.known) - set(files)):
            if not self.folder.excluded(rel):
                self.remove(rel)


# --- watching --------------------------------------------------------------------------------


class Watcher:
    """inotify on every folder of the tree; changed paths wait `debounce` seconds without a
    further change (at most MAX_WAIT) and are then synced.

    SIGTERM (docker stop; tini forwards it to the whole process group) flushes what is
    pending and ends. The container lives only as long as its main process, which gets the
    same signal and may exit first; so the main process (`hold`, the pid start.sh execs
    the server in) is paused with SIGSTOP until the flush is done, then continued to
    finish its own shutdown. SIGINT (Ctrl-C, which Jupyter answers with a question) only
    flushes."""

    def __init__(self, sync: Sync, hold: int | None = None):
        from inotify_simple import INotify, flags

        self.flags = flags
        self.sync = sync
        self.settings = sync.settings
        self.inotify = INotify()
        self.mask = (flags.CLOSE_WRITE | flags.MODIFY | flags.ATTRIB | flags.CREATE | flags.DELETE
                     | flags.MOVED_FROM | flags.MOVED_TO | flags.DELETE_SELF | flags.ONLYDIR | flags.DONT_FOLLOW)
        self.dirs: dict[int, str] = {}  # watch descriptor -> folder relative to the root ("" for the root)
        self.pending: dict[str, tuple[float, float]] = {}  # rel -> (first change, due)
        self.failures: dict[str, int] = {}
        self.stopping = False
        self.flush_now = False
        self.hold = hold
        self.held = False
        self.limit_warned = False
        self.next_scan = time.monotonic() + self.settings.rescan if self.settings.rescan else float("inf")

    def on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            self.flush_now = True
            return
        if not self.stopping and self.hold:
            try:
                os.kill(self.hold, signal.SIGSTOP)
                self.held = True
            except OSError:  # gone already, or not ours to pause (then the flush races the exit)
                pass
        self.stopping = True

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                os.kill(self.hold, signal.SIGCONT)
            except OSError:
                pass

    def watch_tree(self, rel: str) -> None:
        for directory, dirs, _ in os.walk(self.settings.path / rel if rel else self.settings.path):
            base = os.path.relpath(directory, self.settings.path)
            base = "" if base == "." else base
            dirs[:] = [d for d in dirs if not self.sync.folder.excluded(f"{base}/{d}" if base else d)]
            try:
                self.dirs[self.inotify.add_watch(directory, self.mask)] = base
            except OSError as exc:
                if not self.limit_warned:
                    self.limit_warned = True
                    LOG.warning("cannot watch %s (%s; the limit is fs.inotify.max_user_watches): folders not watched "
                                "are synced by the rescan every %.0f s", directory, exc.strerror, self.settings.rescan)

    def forget_tree(self, rel: str) -> None:
        for wd, base in list(self.dirs.items()):
            if base == rel or base.startswith(rel + "/"):
                del self.dirs[wd]

    def mark(self, rel: str, delay: float | None = None) -> None:
        now = time.monotonic()
        first = self.pending.get(rel, (now, now))[0]
        due = now + (self.settings.debounce if delay is None else delay)
        self.pending[rel] = (first, min(due, first + MAX_WAIT) if delay is None else due)

    def on_event(self, event) -> None:  # an inotify_simple.Event
        flags = self.flags
        if event.mask & flags.Q_OVERFLOW:
            LOG.warning("inotify queue overflowed: rescanning the folder")
            self.next_scan = 0
            return
        if event.mask & flags.IGNORED:
            self.dirs.pop(event.wd, None)
            return
        base = self.dirs.get(event.wd)
        if base is None or not event.name:
            return
        rel = f"{base}/{event.name}" if base else event.name
        if self.sync.folder.excluded(rel):
            return
        if event.mask & flags.ISDIR:
            if event.mask & (flags.CREATE | flags.MOVED_TO):
                self.watch_tree(rel)
            elif event.mask & (flags.DELETE | flags.MOVED_FROM):
                self.forget_tree(rel)
        self.mark(rel)

    def process(self, rel: str) -> None:
        path = self.settings.path / rel
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            self.sync.remove(rel)
            return
        if stat.S_ISDIR(info.st_mode):
            for child, child_info in self.sync.folder.files(rel).items():
                if not self.sync.push(child, child_info):
                    self.mark(child)
            self.sync.remove(rel)  # files known below it that are gone
        elif stat.S_ISREG(info.st_mode) and not self.sync.push(rel, info):
            self.mark(rel)

    def flush(self, everything: bool) -> None:
        now = time.monotonic()
        for rel, (_, due) in sorted(self.pending.items()):
            if not everything and due > now:
                continue
            del self.pending[rel]
            try:
                self.process(rel)
                self.failures.pop(rel, None)
            except FileNotFoundError:
                self.mark(rel)  # gone while uploading: next round deletes it
            except Exception as exc:  # noqa: BLE001 - network, permissions, the store refusing: retry later
                count = self.failures[rel] = self.failures.get(rel, 0) + 1
                delay = min(300.0, 5.0 * 2 ** (count - 1))
                LOG.warning("could not sync %s (%s); retrying in %.0f s", rel, _describe(exc), delay)
                if not self.stopping:
                    self.mark(rel, delay)

    def run(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            self.loop()
        finally:
            self.release()

    def loop(self) -> None:
        self.watch_tree("")
        self.safe_scan()
        LOG.info("watching %s (debounce %.1f s, deletions %s)", self.settings.path, self.settings.debounce,
                 "propagated" if self.settings.delete else "kept in the bucket")
        while not self.stopping:
            wait = min([0.2] + [max(0.0, due - time.monotonic()) for _, due in self.pending.values()])
            for event in self.inotify.read(timeout=int(wait * 1000)):
                self.on_event(event)
            self.flush(everything=self.flush_now)
            self.flush_now = False
            if time.monotonic() >= self.next_scan and not self.stopping:
                self.safe_scan()
        for event in self.inotify.read(timeout=0):
            self.on_event(event)
        pending = len(self.pending)
        self.flush(everything=True)
        LOG.info("stopped%s", f" after flushing {pending} pending change(s)" if pending else "")

    def safe_scan(self) -> None:
        self.next_scan = time.monotonic() + self.settings.rescan if self.settings.rescan else float("inf")
        try:
            self.watch_tree("")
            self.sync.scan()
        except Exception as exc:  # noqa: BLE001 - the next rescan tries again
            LOG.warning("rescan failed (%s); next attempt in %.0f s", _describe(exc), self.settings.rescan or 60)
            self.next_scan = time.monotonic() + (self.settings.rescan or 60)


def _describe(exc: BaseException) -> str:
    """The store's error code and message (botocore), else the exception text; redacted by the log filter anyway."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


# --- commands --------------------------------------------------------------------------------


def describe_settings(settings: Settings) -> str:
    key_source = "S3_SYNC_ACCESS_KEY_ID" if settings.access_key else "the AWS credential chain"
    shown = mask(settings.access_key) if settings.access_key else "(from the chain)"
    lines = [
        f"url         {settings.url}",
        f"bucket      {settings.bucket}",
        f"prefix      {settings.prefix or '(whole bucket)'}",
        f"endpoint    {settings.endpoint or '(AWS S3)'}",
        f"region      {settings.region}",
        f"addressing  {settings.addressing}",
        f"signature   {settings.signature}",
        f"path        {settings.path}",
        f"debounce    {settings.debounce:g} s",
        f"rescan      {settings.rescan:g} s" if settings.rescan else "rescan      off",
        f"delete      {'yes' if settings.delete else 'no'}",
        f"required    {'yes' if settings.required else 'no'}",
        f"max size    {_human(settings.max_size) if settings.max_size else 'none'}",
        f"exclude     {', '.join(settings.exclude)}",
        f"key id      {shown} (from {key_source})",
        f"secret      {'set (hidden)' if settings.secret_key else 'from ' + key_source}",
    ]
    return "\n".join(lines)


def command_config(_: argparse.Namespace) -> int:
    print(REDACTOR.clean(describe_settings(load_settings())))
    return 0


def _restore(settings: Settings) -> Sync:
    LOG.info("restoring %s%s into %s ...", settings.url,
             f" from {settings.endpoint}" if settings.endpoint else "", settings.path)
    bucket = Bucket(settings)
    sync = Sync(settings, bucket)
    sync.restore()
    return sync


def command_restore(_: argparse.Namespace) -> int:
    _restore(load_settings())
    return 0


def command_run(args: argparse.Namespace) -> int:
    """Restore, then watch. `start` returns once restored and watching, and leaves the watcher
    in the background (same process group, so the signal tini forwards reaches it)."""
    settings = load_settings()
    try:
        sync = _restore(settings)
        watcher = Watcher(sync, args.hold if args.hold and args.hold > 1 else None)
        watcher.watch_tree("")
    except SettingsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to set up the sync is handled the same way
        if settings.required:
            LOG.error("restore failed: %s. Not starting: the folder would be out of date and its changes "
                      "could overwrite newer copies (S3_SYNC_REQUIRED=no starts without sync)", _describe(exc))
            return 1
        LOG.warning("restore failed: %s. Starting WITHOUT sync (S3_SYNC_REQUIRED=no): nothing in %s "
                    "will be saved", _describe(exc), settings.path)
        return 0
    if args.background:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            LOG.debug("watcher started (pid %d)", pid)
            return 0
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sync.bucket = Bucket(settings)  # a fresh connection pool for the child
    watcher.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3-sync", description="Keep a folder in an S3-compatible bucket "
                                     "(settings: S3_SYNC_* environment variables; see docs/persistence.md).")
    parser.add_argument("--version", action="store_true", help="print the versions of the tool and its libraries")
    commands = parser.add_subparsers(dest="command")
    for name, background, text in (("start", True, "restore, then watch in the background (what start.sh runs)"),
                                   ("run", False, "restore, then watch in the foreground until SIGTERM")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--hold", type=int, metavar="PID",
                             help="the container's main process, paused on SIGTERM until pending changes are uploaded")
        command.set_defaults(func=command_run, background=background)
    commands.add_parser("restore", help="restore only").set_defaults(func=command_restore)
    commands.add_parser("config", help="print the settings (credentials masked)").set_defaults(func=command_config)
    args = parser.parse_args(argv)
    if args.version:
        import boto3
        import inotify_simple

        print(f"s3-sync {VERSION} (boto3 {boto3.__version__}, inotify_simple {inotify_simple.__version__})")
        return 0
    if args.command is None:
        parser.error("a command is required")
    apply_aliases()
    setup_logging()
    try:
        return args.func(args)
    except SettingsError as exc:
        LOG.error("%s", exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - reported through the redacting log, never as a raw traceback
        LOG.error("%s", _describe(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
