"""Smoke-test records: one small JSON document per test key, kept between runs.

A record says that the image with content hash H (and image id D) passed or
failed the checks of key K, when, with which counts. `stacks test` skips an
image whose key has a passing record; `stacks push` and the build report read
the same records. The local store is a folder of `<key>.json` files under the
XDG cache dir (`~/.cache/stacks/tests`), written atomically, so it survives a
removed `build/` folder and two runs never see half a record. The same JSON
travels to the registry cache (docs/cache.md).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.files import atomic_write

MEDIA_TYPE = "application/vnd.stacks.test-record.v1+json"


@dataclass(frozen=True)
class TestRecord:
    key: str
    image: str  # node name
    hash: str  # content hash that was tested
    image_id: str  # the tested image's id (config digest): a record for another image is ignored
    passed: bool
    tool: str
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    checks: dict[str, int] = field(default_factory=dict)  # status -> count
    seconds: float = 0.0
    # What the image's version commands answered when it was tested (name -> version, name -> why not):
    # `stacks push` resolves version tags from them without pulling an image that is only in the cache.
    versions: dict[str, str] | None = None
    version_failures: dict[str, str] = field(default_factory=dict)
    version_commands: dict[str, str] = field(default_factory=dict)  # name -> the command that answered
    # The image's package manifest (builder/inventory), read once when it was tested: an image that passed
    # earlier, here or in the registry cache, is not read again.
    manifest: dict[str, Any] | None = None

    __test__ = False  # not a pytest class

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> TestRecord | None:
        """The record, or None for anything that is not a well-formed record."""
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None

    def proves(self, key: str, content_hash: str, image_id: str | None) -> bool:
        """A passing record for this key, this hash, and (when known) this very image."""
        return (self.passed and self.key == key and self.hash == content_hash
                and (image_id is None or not self.image_id or self.image_id == image_id))

    def summary(self) -> dict[str, Any]:
        """The shape of an image entry in test-report.json, so reports and the push gate read it unchanged."""
        return {"hash": self.hash, "passed": self.passed, "checks": dict(self.checks), "seconds": self.seconds,
                "screenshot": None, "cached": self.date}


class RecordStore:
    """Test records on this machine, one file per key."""

    def __init__(self, folder: Path):
        self.folder = folder  # the Workspace puts it in the user's cache: ~/.cache/stacks/tests

    def get(self, key: str) -> TestRecord | None:
        try:
            return TestRecord.from_json((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except OSError:
            return None

    def put(self, record: TestRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / f"{record.key}.json", record.to_json())

    def mark_shared(self, key: str, location: str) -> None:
        """Remember that the cache at `location` has this record: later runs do not ask it again."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{key}.{_slug(location)}.shared").touch()

    def is_shared(self, key: str, location: str) -> bool:
        return (self.folder / f"{key}.{_slug(location)}.shared").exists()

    def passing(self, key: str, content_hash: str, image_id: str | None = None) -> TestRecord | None:
        record = self.get(key)
        return record if record is not None and record.proves(key, content_hash, image_id) else None


def _slug(location: str) -> str:
    import hashlib

    return hashlib.sha256(location.encode()).hexdigest()[:16]
