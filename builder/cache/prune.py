"""`stacks cache prune`: which images of the registry cache stay, which go with their test records, and the deleting.

The cache only grows by itself: every build pushes `<name>-...-<hash>` and a
test record. Pruning keeps, per manifest in the cache repository:
- what the current plan needs (the cache tag of every node),
- the last N builds of each image name and platform, newest first by the
  image config's `created` time (the build time; no push time is recorded),
  and what they were built on (their parents, by the parent hash in
  `io.stacks.inputs`), so going back to one of them finds its whole chain,
- whatever a tag of a release repository serves (same manifest or image id),
- the layer-cache tags (`...-latest`, the newest build of a name) and every
  manifest under a tag stacks does not write, which is not ours to judge;
and removes the rest together with its test records. Cache tags are read by
their trailing 64-hex content hash only: the part before it is the name
(and, with platforms, more), never parsed here.

`decide` is pure (unit tested with plain values); `read_inventory`,
`released` and `delete` talk to the registry. Deleting goes record first,
image second, so a failure can leave an image without its record (the next
runner tests it again) but never a record without its image.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from builder.adapters.registry import INDEX_TYPES, MANIFEST_TYPES, DeleteRefused, Registry, RegistryError
from builder.cache.records import MEDIA_TYPE
from builder.cache.registry_cache import RECORD_SUFFIX
from builder.plan.labels import INPUTS_LABEL, NAME_LABEL
from builder.plan.plan import HASH_LABEL
from builder.reference import ImageRef

HASH_TAG = re.compile(r"-[0-9a-f]{64}$")
RECORD_TAG = re.compile(r"^sha256-(?P<hex>[0-9a-f]{64})" + re.escape(RECORD_SUFFIX) + "$")
LATEST_SUFFIX = "-latest"
OCI_TYPES = (*MANIFEST_TYPES, "application/vnd.oci.artifact.manifest.v1+json")


@dataclass(frozen=True)
class CachedImage:
    """One image manifest of the cache repository with every tag that points at it."""

    digest: str
    tags: tuple[str, ...]
    name: str | None  # the config's io.stacks.name; None: not a stacks build
    platform: str = ""  # os/architecture of the config
    created: str = ""  # the config's creation time (RFC 3339); "" when absent
    config: str = ""  # the config digest: the image id
    blobs: Mapping[str, int] = field(default_factory=dict)  # digest -> size: manifest, config, layers
    hash: str = ""  # the config's io.stacks.hash
    parent: str = ""  # the parent's content hash, from io.stacks.inputs ("" for a base)


@dataclass(frozen=True)
class CachedRecord:
    """A test record artifact; `subject` is the image manifest it vouches for."""

    digest: str
    tags: tuple[str, ...]
    subject: str
    blobs: Mapping[str, int] = field(default_factory=dict)
    subject_present: bool = False  # the subject is in the repository without a tag (checked when reading)


@dataclass(frozen=True)
class Inventory:
    images: tuple[CachedImage, ...]
    records: tuple[CachedRecord, ...]


@dataclass(frozen=True)
class Kept:
    image: CachedImage
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Removal:
    """An image and its test records, deleted records first; `image` None: records whose image is gone."""

    image: CachedImage | None
    records: tuple[CachedRecord, ...]

    @property
    def label(self) -> str:
        if self.image is None:
            return f"test record of the deleted image {self.records[0].subject}"
        return ", ".join(self.image.tags)


@dataclass(frozen=True)
class Decision:
    kept: tuple[Kept, ...]
    removals: tuple[Removal, ...]
    freed: int  # bytes of the blobs only removed manifests use: what the registry frees at its garbage collection
    shared: int  # bytes of the removed manifests' blobs that kept manifests use too: not freed, not counted in `freed`

    def size(self, removal: Removal) -> int:
        """The bytes of one removal's blobs (shared ones included)."""
        return sum(_blobs([removal]).values())


def is_stacks_tag(tag: str) -> bool:
    """A tag stacks writes into a cache: `...-<64 hex>`, `...-latest`, or a test record's."""
    return bool(HASH_TAG.search(tag)) or tag.endswith(LATEST_SUFFIX) or bool(RECORD_TAG.match(tag))


def decide(inventory: Inventory, needed: set[str], released: Mapping[str, Iterable[str]], keep: int) -> Decision:
    """What stays (with every reason) and what goes. `needed`: the current plan's cache tags; `released`:
    manifest or config digest -> the release tags serving it; `keep`: builds kept per name and platform."""
    reasons: dict[str, list[str]] = {image.digest: [] for image in inventory.images}
    for image in inventory.images:
        why = reasons[image.digest]
        if needed & set(image.tags):
            why.append("in the current plan")
        refs = sorted({*released.get(image.digest, ()), *(released.get(image.config, ()) if image.config else ())})
        if refs:
            why.append("released as " + ", ".join(refs))
        why += [f"layer cache ({tag})" for tag in image.tags if tag.endswith(LATEST_SUFFIX)]
        foreign = [tag for tag in image.tags if not is_stacks_tag(tag)]
        if image.name is None or foreign:
            why.append("not only a stacks cache image" + (f" (also tagged {', '.join(foreign)})" if foreign else ""))
    recent = []
    for (name, platform), images in _groups(inventory.images).items():
        for image in images[:keep]:
            reasons[image.digest].append(f"one of the last {keep} builds of {name}" + (f" ({platform})" if platform else ""))
            recent.append(image)
    for child, parent in _ancestors(inventory.images, recent):
        reasons[parent.digest].append(f"built on by {child.tags[0]}, one of the last builds kept")
    kept = tuple(Kept(i, tuple(reasons[i.digest])) for i in inventory.images if reasons[i.digest])
    gone = [i for i in inventory.images if not reasons[i.digest]]
    present = {i.digest for i in inventory.images}
    removals = [Removal(i, tuple(r for r in inventory.records if r.subject == i.digest)) for i in gone]
    orphans = [r for r in inventory.records if r.subject not in present and not r.subject_present]
    removals += [Removal(None, (r,)) for r in orphans]
    removed_records = {r.digest for removal in removals for r in removal.records}
    kept_blobs = _blobs([Removal(k.image, ()) for k in kept]
                        + [Removal(None, (r,)) for r in inventory.records if r.digest not in removed_records])
    removed_blobs = _blobs(removals)
    freed = sum(size for digest, size in removed_blobs.items() if digest not in kept_blobs)
    shared = sum(size for digest, size in removed_blobs.items() if digest in kept_blobs)
    return Decision(kept, tuple(removals), freed, shared)


def _groups(images: Iterable[CachedImage]) -> dict[tuple[str, str], list[CachedImage]]:
    """Stacks builds by (name, platform), newest first (creation time, then digest for a stable order)."""
    groups: dict[tuple[str, str], list[CachedImage]] = {}
    for image in images:
        if image.name is not None:
            groups.setdefault((image.name, image.platform), []).append(image)
    return {key: sorted(group, key=lambda i: (i.created, i.digest), reverse=True) for key, group in groups.items()}


def _ancestors(images: Iterable[CachedImage], recent: list[CachedImage]) -> list[tuple[CachedImage, CachedImage]]:
    """(child, parent) up the chain of every recent build: what those builds were built on, so a plan that goes
    back to one of them finds its whole chain (same parent hash, same platform)."""
    by_hash: dict[tuple[str, str], list[CachedImage]] = {}
    for image in images:
        if image.hash:
            by_hash.setdefault((image.hash, image.platform), []).append(image)
    found, seen, queue = [], {i.digest for i in recent}, list(recent)
    while queue:
        child = queue.pop(0)
        for parent in by_hash.get((child.parent, child.platform), []) if child.parent else []:
            if parent.digest not in seen:
                seen.add(parent.digest)
                found.append((child, parent))
                queue.append(parent)
    return found


def _blobs(removals: Iterable[Removal]) -> dict[str, int]:
    found: dict[str, int] = {}
    for removal in removals:
        for part in ([removal.image] if removal.image else []) + list(removal.records):
            found.update(part.blobs)
    return found


# --- reading the registry ---------------------------------------------------------


def read_inventory(registry: Registry, path: str, say: Callable[[str], None] = lambda _: None) -> Inventory:
    """Every manifest of the cache repository `path`: tags grouped by digest, each image's config read for its
    name, platform and creation time, test records by their tag and (where the registry has the API) referrers."""
    tags = registry.tags(path)
    say(f"reading {len(tags)} tags of {registry.host}/{path}")
    by_digest: dict[str, list[str]] = {}
    record_tags: list[str] = []
    for tag in sorted(tags):
        if RECORD_TAG.match(tag):
            record_tags.append(tag)
            continue
        digest = registry.head(path, tag)
        if digest:
            by_digest.setdefault(digest, []).append(tag)
    images = tuple(_image(registry, path, digest, tuple(names)) for digest, names in by_digest.items())
    records = {r.digest: r for r in (_record(registry, path, tag) for tag in record_tags) if r is not None}
    for record in _referred(registry, path, images, records):
        records.setdefault(record.digest, record)
    present = {i.digest for i in images}
    checked = tuple(record if record.subject in present else
                    CachedRecord(record.digest, record.tags, record.subject, record.blobs,
                                 registry.head(path, record.subject) is not None)
                    for record in records.values())
    return Inventory(images, checked)


def _image(registry: Registry, path: str, digest: str, tags: tuple[str, ...]) -> CachedImage:
    body, _, _ = _manifest(registry, path, digest)
    blobs = {digest: len(body)}
    document = json.loads(body)
    configs: list[dict[str, Any]] = []
    for child in _children(registry, path, document, blobs):
        descriptor = child.get("config") or {}
        for part in [descriptor, *child.get("layers", [])]:
            if part.get("digest"):
                blobs[part["digest"]] = int(part.get("size", 0))
        if descriptor.get("digest"):
            configs.append(json.loads(registry.blob(path, descriptor["digest"])))
    config = configs[0] if configs else {}
    labels = (config.get("config") or {}).get("Labels") or {}
    platform = "/".join(p for p in (config.get("os", ""), config.get("architecture", "")) if p)
    config_digest = (document.get("config") or {}).get("digest", "")
    return CachedImage(digest, tags, labels.get(NAME_LABEL), platform, str(config.get("created", "")), config_digest, blobs,
                       labels.get(HASH_LABEL, ""), _parent_hash(labels.get(INPUTS_LABEL)))


def _parent_hash(inputs: str | None) -> str:
    """The parent's content hash from the io.stacks.inputs label ("" when absent or unreadable)."""
    try:
        parent = json.loads(inputs or "{}").get("parent")
    except (ValueError, AttributeError):
        return ""
    return parent if isinstance(parent, str) else ""


def _children(registry: Registry, path: str, document: dict[str, Any], blobs: dict[str, int]) -> list[dict[str, Any]]:
    """The image manifests of a manifest: itself, or an index's children (their bodies counted as blobs)."""
    if document.get("mediaType") not in INDEX_TYPES and "manifests" not in document:
        return [document]
    children = []
    for descriptor in document.get("manifests", []):
        body, _, digest = _manifest(registry, path, descriptor["digest"])
        blobs[digest] = len(body)
        children.append(json.loads(body))
    return children


def _record(registry: Registry, path: str, tag: str) -> CachedRecord | None:
    found = registry.raw_manifest(path, tag, OCI_TYPES)
    if found is None:
        return None
    body, _, digest = found
    document = json.loads(body)
    match = RECORD_TAG.match(tag)
    assert match is not None
    subject = (document.get("subject") or {}).get("digest") or f"sha256:{match['hex']}"
    return CachedRecord(digest, (tag,), subject, _parts(document, digest, body))


def _referred(registry: Registry, path: str, images: tuple[CachedImage, ...],
              known: Mapping[str, CachedRecord]) -> list[CachedRecord]:
    """Test records the referrers API names that no tag points at (registries that index `subject`)."""
    found: list[CachedRecord] = []
    for image in images:
        descriptors = registry.referrers(path, image.digest)
        if descriptors is None:
            return found  # no referrers API here: the tags are all there is
        for descriptor in descriptors:
            if descriptor.get("artifactType") == MEDIA_TYPE and descriptor.get("digest") not in known:
                body, _, digest = _manifest(registry, path, descriptor["digest"], OCI_TYPES)
                found.append(CachedRecord(digest, (), image.digest, _parts(json.loads(body), digest, body)))
    return found


def _parts(document: dict[str, Any], digest: str, body: bytes) -> dict[str, int]:
    blobs = {digest: len(body)}
    for part in [document.get("config") or {}, *document.get("layers", [])]:
        if part.get("digest"):
            blobs[part["digest"]] = int(part.get("size", 0))
    return blobs


def _manifest(registry: Registry, path: str, reference: str,
              accept: tuple[str, ...] = MANIFEST_TYPES) -> tuple[bytes, str, str]:
    found = registry.raw_manifest(path, reference, accept)
    if found is None:
        raise RegistryError(f"registry {registry.host}: {path}@{reference} vanished while it was being read")
    return found


def released(registry_for: Callable[[str], Registry], repositories: Iterable[ImageRef],
             say: Callable[[str], None] = lambda _: None) -> dict[str, list[str]]:
    """Manifest and config digests -> the release tags (`repo:tag`) that serve them, over every tag of every
    release repository (an index: each of its images too). A repository that does not exist has none."""
    found: dict[str, list[str]] = {}
    for repository in repositories:
        registry = registry_for(repository.registry)
        tags = registry.tags(repository.repository)
        say(f"reading {len(tags)} release tags of {repository.name}")
        for tag in tags:
            where = f"{repository.name}:{tag}"
            for digest in _served(registry, repository.repository, tag):
                found.setdefault(digest, []).append(where)
    return found


def _served(registry: Registry, path: str, tag: str) -> list[str]:
    """The digests a release tag stands for: its manifest and config, and those of an index's images."""
    found = registry.raw_manifest(path, tag)
    if found is None:
        return []
    body, _, digest = found
    document = json.loads(body)
    digests = [digest]
    for child in _children(registry, path, document, {}):
        config = (child.get("config") or {}).get("digest")
        if config:
            digests.append(config)
    digests += [m["digest"] for m in document.get("manifests", []) if m.get("digest")]
    return digests


# --- deleting -----------------------------------------------------------------------


@dataclass
class Outcome:
    """What `delete` did: every manifest deleted, and where it stopped, if it did."""

    deleted: list[str] = field(default_factory=list)  # manifest digests, in order
    removed: list[Removal] = field(default_factory=list)  # removals completed
    refused: str | None = None  # the registry does not delete (nothing was deleted when `deleted` is empty)
    failed: str | None = None  # another error stopped it
    stopped: Removal | None = None  # the removal it stopped in
    records_gone: int = 0  # records of `stopped` already deleted (its image stays: tested again by the next runner)

    @property
    def complete(self) -> bool:
        return self.refused is None and self.failed is None


def delete(registry: Registry, path: str, removals: Iterable[Removal],
           say: Callable[[str], None] = lambda _: None) -> Outcome:
    """Delete each removal's records, then its image; stop at the first refusal or error (never a record
    without its image: records go first)."""
    outcome = Outcome()
    for removal in removals:
        done = 0
        try:
            for record in removal.records:
                registry.delete_manifest(path, record.digest)
                outcome.deleted.append(record.digest)
                done += 1
            if removal.image is not None:
                registry.delete_manifest(path, removal.image.digest)
                outcome.deleted.append(removal.image.digest)
        except DeleteRefused as exc:
            outcome.refused, outcome.stopped, outcome.records_gone = str(exc), removal, done
            return outcome
        except RegistryError as exc:
            outcome.failed, outcome.stopped, outcome.records_gone = str(exc), removal, done
            return outcome
        outcome.removed.append(removal)
        say(f"deleted {removal.label}" + (f" and {done} test record{'s' if done != 1 else ''}" if removal.image and done else ""))
    return outcome
