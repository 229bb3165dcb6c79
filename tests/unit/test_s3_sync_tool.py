"""The pure parts of the s3-sync fragment's tool (fragments/s3-sync/s3sync.py): settings from the
environment, masking, exclusions, and the restore/scan rules against an in-memory bucket.
The watcher and the real S3 protocol are covered by tests/integration/test_s3_sync.py."""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("s3sync", ROOT / "fragments" / "s3-sync" / "s3sync.py")
s3sync = importlib.util.module_from_spec(_spec)
sys.modules["s3sync"] = s3sync  # dataclasses look their module up
_spec.loader.exec_module(s3sync)

MTIME = 1_700_000_000_250_000_000


@pytest.fixture
def env(monkeypatch, tmp_path: Path):
    for name in list(os.environ):
        if name.startswith(("S3_SYNC_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("S3_SYNC_URL", "s3://team-bucket/alice/")
    return monkeypatch


def test_url_gives_bucket_and_a_normalised_prefix() -> None:
    assert s3sync.parse_url("s3://bucket") == ("bucket", "")
    assert s3sync.parse_url("s3://bucket/") == ("bucket", "")
    assert s3sync.parse_url("s3://bucket//team/alice/") == ("bucket", "team/alice/")


@pytest.mark.parametrize("url", ["https://bucket/x", "bucket/x", "s3:///x", "s3://bucket/../x"])
def test_bad_urls_are_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(s3sync.SettingsError, match="S3_SYNC_URL"):
        s3sync.parse_url(url)


def test_a_url_with_credentials_is_refused_without_repeating_them() -> None:
    with pytest.raises(s3sync.SettingsError) as caught:
        s3sync.parse_url("s3://AKIAKEY:very-secret@bucket/x")
    assert "very-secret" not in str(caught.value) and "S3_SYNC_SECRET_ACCESS_KEY" in str(caught.value)


def test_defaults(env, tmp_path: Path) -> None:
    settings = s3sync.load_settings()
    assert (settings.bucket, settings.prefix, settings.endpoint) == ("team-bucket", "alice/", None)
    assert settings.path == tmp_path / "work"
    assert (settings.region, settings.addressing, settings.signature) == ("us-east-1", "auto", "s3v4")
    assert (settings.debounce, settings.delete, settings.required, settings.max_size) == (2.0, True, True, None)


def test_settings_from_the_environment(env, tmp_path: Path) -> None:
    env.setenv("S3_SYNC_ENDPOINT", "oss-cn-hangzhou.aliyuncs.com")
    env.setenv("S3_SYNC_PATH", "/data/project")
    env.setenv("S3_SYNC_DEBOUNCE", "0.5")
    env.setenv("S3_SYNC_DELETE", "no")
    env.setenv("S3_SYNC_MAX_SIZE", "500M")
    env.setenv("S3_SYNC_EXCLUDE", "*.tmp, data/raw/*")
    env.setenv("AWS_DEFAULT_REGION", "cn-hangzhou")
    settings = s3sync.load_settings()
    assert settings.endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    assert settings.addressing == "virtual", "Aliyun OSS, Tencent COS and Huawei OBS need bucket host names"
    assert (settings.path, settings.debounce, settings.delete) == (Path("/data/project"), 0.5, False)
    assert settings.max_size == 500 * 1024**2 and settings.region == "cn-hangzhou"
    assert settings.exclude[-2:] == ("*.tmp", "data/raw/*")


@pytest.mark.parametrize(("name", "value"), [("S3_SYNC_DEBOUNCE", "soon"), ("S3_SYNC_DELETE", "maybe"),
                                             ("S3_SYNC_ADDRESSING", "dns"), ("S3_SYNC_MAX_SIZE", "big")])
def test_bad_values_name_their_variable(env, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(s3sync.SettingsError, match=name):
        s3sync.load_settings()


@pytest.fixture
def own_logging():
    """setup_logging() takes over the root logger, as the tool's process may; give it back."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    s3sync.REDACTOR.replacements.clear()


def test_credentials_never_reach_the_log(env, capsys, own_logging) -> None:
    env.setenv("S3_SYNC_ACCESS_KEY_ID", "AKIAEXAMPLEKEY123456")
    env.setenv("S3_SYNC_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/example+secret")
    s3sync.setup_logging()
    try:
        raise RuntimeError("signature for wJalrXUtnFEMI/example+secret of AKIAEXAMPLEKEY123456 does not match")
    except RuntimeError:
        s3sync.LOG.exception("failed with %s", "wJalrXUtnFEMI/example+secret")
    logging.getLogger("botocore.test").warning("key %s", "AKIAEXAMPLEKEY123456")
    err = capsys.readouterr().err
    assert "example+secret" not in err and "AKIAEXAMPLEKEY123456" not in err
    assert "WARNING: key AKIA****56" in err and "[s3-sync] ERROR: failed with ****" in err
    settings = s3sync.describe_settings(s3sync.load_settings())
    assert "example+secret" not in settings and "AKIA****56" in settings


def test_modification_times_in_rclone_format() -> None:
    assert s3sync._format_mtime(MTIME) == "1700000000.250000000"
    assert s3sync._parse_mtime("1700000000.250000000") == MTIME
    assert s3sync._parse_mtime("1700000000.25") == MTIME
    assert s3sync._parse_mtime("1700000000") == 1_700_000_000_000_000_000
    assert s3sync._parse_mtime("yesterday") is None


@pytest.mark.parametrize(("rel", "excluded"), [
    ("nb.ipynb", False), (".ipynb_checkpoints/nb-checkpoint.ipynb", True), ("a/.ipynb_checkpoints/x", True),
    (".ipynb_checkpoints-like.txt", False), ("pkg/__pycache__/m.pyc", True), (".~nb.ipynb", True),
    ("x.swp", True), (".s3sync-abc", True), ("data/raw/big.bin", True), ("data/clean.csv", False), ("a.tmp", True),
])
def test_exclusions_match_any_component_or_a_path_pattern(rel: str, excluded: bool) -> None:
    folder = s3sync.Folder(Path("/nowhere"), s3sync.DEFAULT_EXCLUDE + ("*.tmp", "data/raw/*"))
    assert folder.excluded(rel) is excluded


# --- restore and scan against an in-memory bucket ---------------------------------------------


class FakeBucket:
    """Objects as {rel: (bytes, mtime_ns or None)}; records what was called."""

    def __init__(self, objects: dict[str, tuple[bytes, int | None]]):
        self.objects = dict(objects)
        self.calls: list[tuple[str, str]] = []

    def list(self) -> dict:
        return {rel: s3sync.RemoteObject(len(data), mtime or 1) for rel, (data, mtime) in self.objects.items()}

    def mtime(self, rel: str, fallback: int) -> int:
        return self.objects[rel][1] or fallback

    def download(self, rel: str, target: Path, fallback: int) -> None:
        self.calls.append(("download", rel))
        data, mtime = self.objects[rel]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.utime(target, ns=(mtime or fallback,) * 2)

    def upload(self, rel: str, source: Path, info: os.stat_result) -> None:
        self.calls.append(("upload", rel))
        self.objects[rel] = (source.read_bytes(), info.st_mtime_ns)

    def delete(self, rel: str) -> None:
        self.calls.append(("delete", rel))
        del self.objects[rel]


def _sync(env, tmp_path: Path, objects: dict, **variables: str):
    for name, value in variables.items():
        env.setenv(name, value)
    bucket = FakeBucket(objects)
    return s3sync.Sync(s3sync.load_settings(), bucket), bucket, tmp_path / "work"


def _write(path: Path, data: bytes, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime, mtime))


def test_restore_downloads_missing_files_and_skips_excluded_and_unsafe_keys(env, tmp_path: Path) -> None:
    sync, bucket, work = _sync(env, tmp_path, {
        "a.txt": (b"a", MTIME), "deep/b.txt": (b"b", MTIME), "../escape": (b"x", MTIME),
        ".ipynb_checkpoints/c": (b"c", MTIME)})
    sync.restore()
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()) == ["a.txt", "deep/b.txt"]
    assert (work / "deep/b.txt").stat().st_mtime_ns == MTIME
    assert not (tmp_path / "escape").exists()
    sync.scan()
    assert [c for c in bucket.calls if c[0] != "download"] == [], "a fresh restore leaves nothing to upload"


def test_on_conflict_the_copy_changed_last_wins(env, tmp_path: Path) -> None:
    sync, bucket, work = _sync(env, tmp_path, {"old-here.txt": (b"bucket", MTIME), "new-here.txt": (b"bucket", MTIME)})
    _write(work / "old-here.txt", b"local, older", MTIME - 10**9)
    _write(work / "new-here.txt", b"local, newer", MTIME + 10**9)
    sync.restore()
    assert (work / "old-here.txt").read_bytes() == b"bucket"
    assert (work / "new-here.txt").read_bytes() == b"local, newer"
    sync.scan()
    assert bucket.objects["new-here.txt"][0] == b"local, newer"
    assert ("upload", "old-here.txt") not in bucket.calls


def test_scan_uploads_changes_and_deletes_what_vanished(env, tmp_path: Path) -> None:
    sync, bucket, work = _sync(env, tmp_path, {"keep.txt": (b"k", MTIME), "gone.txt": (b"g", MTIME),
                                               "dir/gone.txt": (b"g", MTIME)})
    sync.restore()
    (work / "gone.txt").unlink()
    (work / "dir" / "gone.txt").unlink()
    _write(work / "new.txt", b"n", MTIME)
    sync.scan()
    assert set(bucket.objects) == {"keep.txt", "new.txt"}
    bucket.calls.clear()
    sync.scan()
    assert bucket.calls == [], "an unchanged folder costs no request"


def test_deletions_can_be_kept_in_the_bucket_and_large_files_left_out(env, tmp_path: Path) -> None:
    sync, bucket, work = _sync(env, tmp_path, {"gone.txt": (b"g", MTIME)}, S3_SYNC_DELETE="no", S3_SYNC_MAX_SIZE="1K")
    sync.restore()
    (work / "gone.txt").unlink()
    _write(work / "big.bin", b"x" * 2048, MTIME)
    sync.scan()
    assert set(bucket.objects) == {"gone.txt"}


@pytest.mark.parametrize(("folder", "url"), [("my-bucket/users/alice", "s3://my-bucket/users/alice"),
                                             ("oss://my-bucket/alice/", "s3://my-bucket/alice/"), ("my-bucket", "s3://my-bucket")])
def test_aliyun_oss_variables_are_aliases(env, folder: str, url: str) -> None:
    env.delenv("S3_SYNC_URL")
    fake = {"ALIYUN_OSS_BUCKET_FOLDER": folder, "ALIYUN_OSS_ACCESS_KEY_ID": "LTAIexample", "ALIYUN_OSS_ACCESS_KEY_SECRET": "sec",
            "ALIYUN_OSS_ENDPOINT": "oss-cn-shanghai-internal.aliyuncs.com"}
    s3sync.apply_aliases(fake)
    assert fake["S3_SYNC_URL"] == url
    assert (fake["S3_SYNC_ACCESS_KEY_ID"], fake["S3_SYNC_SECRET_ACCESS_KEY"]) == ("LTAIexample", "sec")
    assert (fake["S3_SYNC_ENDPOINT"], fake["S3_SYNC_REGION"]) == ("oss-cn-shanghai-internal.aliyuncs.com", "cn-shanghai")
    given = {"ALIYUN_OSS_BUCKET_FOLDER": "b/f", "ALIYUN_OSS_REGION": "oss-cn-beijing", "S3_SYNC_URL": "s3://ours/x"}
    s3sync.apply_aliases(given)  # our own variables win; a region with the oss- prefix is the plain region
    assert (given["S3_SYNC_URL"], given["S3_SYNC_REGION"]) == ("s3://ours/x", "cn-beijing")
