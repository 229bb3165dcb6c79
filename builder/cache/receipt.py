"""The build receipt: proof that nothing changed since the last successful `stacks build`.

A no-op build should cost a fraction of what `docker build` costs for the
same cached Dockerfiles. Planning cannot get there: importing the spec
models, the template engine and the Docker SDK, and compiling every
fragment template, take most of a second before the first image is looked
at. So a successful build leaves a receipt in the user's cache:

- the invocation it answers (the command line, the folder it ran in, the
  `STACKS_*`/`DOCKER_*` environment), which names the receipt;
- the digest of everything the plan was made from (the spec, every file of
  every fragment folder on the search path, the tool's own code and data,
  the CA certificates, the engine probe);
- per node, the image that build left: its id, the tags it must carry and
  the labels that tie it to the node's content hash, and its platform (a
  build of several platforms leaves one receipt for all of them, with the
  folder each platform's report goes to).

The next identical invocation re-hashes those inputs and reads one raw
image listing. When both still match, the build is a no-op and the report
is written from the receipt; on any difference (a byte in a fragment, an
image removed or re-tagged, another environment) the full build runs and
writes a new receipt. Nothing here imports anything beyond the standard
library, so the check costs milliseconds.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from builder.files import atomic_write

RECEIPT_FORMAT = 2  # 2: a report folder per platform (`outs`)
SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"})
ENV_PREFIXES = ("STACKS_", "DOCKER_")  # what changes the plan, the engine or the selection
ENV_NAMES = ("XDG_CACHE_HOME", "HOME")  # where the engine probe and the receipts themselves live


@dataclass(frozen=True)
class ReceiptNode:
    """One node as the build left it: the image, and what proves it is still the node's."""

    name: str
    kind: str
    parent: str | None
    hash: str
    ref: str
    image_id: str
    tags: tuple[str, ...]  # the image must carry all of them (its content-addressed ref, `latest`)
    labels: dict[str, str]  # and these labels (its content hash); empty for pulled bases
    size: int | None = None
    size_budget: int | None = None
    platform: str = ""


@dataclass(frozen=True)
class Receipt:
    invocation: str
    inputs: tuple[str, ...]  # files and folders, as given to `inputs_digest`
    digest: str
    nodes: tuple[ReceiptNode, ...]
    notes: tuple[str, ...] = ()  # what the full build said before building (e.g. --only-verified left out)
    engine: str = ""  # the engine line the full build printed
    engine_version: str = ""  # the daemon's Server header ("Docker/20.10.24 (linux)"): another may build differently
    spec: str = ""
    outs: dict[str, str] = field(default_factory=dict)  # platform -> where its report goes ("build", "build/linux-arm64")
    jobs: int = 1
    written: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"format": RECEIPT_FORMAT, **asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Receipt | None:
        """None for anything that is not a receipt of this format: a broken one only costs a full build."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.pop("format", None) != RECEIPT_FORMAT:
                return None
            nodes = tuple(ReceiptNode(**{**n, "tags": tuple(n["tags"])}) for n in data.pop("nodes"))
            return cls(nodes=nodes, **{**data, "inputs": tuple(data["inputs"]), "notes": tuple(data["notes"])})
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def invocation_key(options: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """Names the receipt: the same command, in the same folder, with the same environment."""
    relevant = {k: v for k, v in env.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}
    text = json.dumps({"options": options, "env": relevant, "cwd": os.getcwd()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def inputs_digest(paths: Iterable[Path]) -> str:
    """One digest of every byte under `paths` (files, or folders walked in name order; links by their target)."""
    digest = hashlib.sha256()
    for root in paths:
        digest.update(f"\0root {root}\0".encode())
        for name, kind, content in _entries(str(root)):
            digest.update(f"{kind} {name}\0".encode())
            digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def _entries(root: str) -> Iterable[tuple[str, str, bytes]]:
    if os.path.islink(root):
        yield "", "link", os.readlink(root).encode()
        root = os.path.realpath(root)
    if os.path.isfile(root):
        yield "", "file", _read(root)
    elif os.path.isdir(root):
        yield from _folder(root, "")
    else:
        yield "", "missing", b""


def _folder(path: str, relative: str) -> Iterable[tuple[str, str, bytes]]:
    with os.scandir(path) as found:
        entries = sorted(found, key=lambda e: e.name)
    for entry in entries:
        name = f"{relative}{entry.name}"
        if entry.is_symlink():
            yield name, "link", os.readlink(entry.path).encode()
        elif entry.is_dir():
            if entry.name not in SKIPPED_DIRS:
                yield from _folder(entry.path, name + "/")
        elif not entry.name.endswith(".pyc"):
            yield name, "file", _read(entry.path)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def still_true(receipt: Receipt, rows: Iterable[Mapping[str, Any]]) -> bool:
    """Every node's image is still in the engine, with its tags and labels (`rows`: the raw image listing)."""
    by_id = {str(row.get("Id", "")): row for row in rows}
    for node in receipt.nodes:
        row = by_id.get(node.image_id)
        if row is None:
            return False
        tags = set(row.get("RepoTags") or ())
        labels = row.get("Labels") or {}
        if not tags.issuperset(node.tags) or any(labels.get(k) != v for k, v in node.labels.items()):
            return False
    return True


class ReceiptStore:
    """Receipts in a folder of the user's cache, one per invocation; written whole or not at all."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, invocation: str) -> Receipt | None:
        try:
            text = (self.folder / f"{invocation}.json").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        receipt = Receipt.from_json(text)
        return receipt if receipt is not None and receipt.invocation == invocation else None

    def save(self, receipt: Receipt) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / f"{receipt.invocation}.json", receipt.to_json())

    def drop(self, invocation: str) -> None:
        """Forget a receipt (a build that failed or changed something must not leave an old one behind)."""
        try:
            (self.folder / f"{invocation}.json").unlink()
        except FileNotFoundError:
            pass
