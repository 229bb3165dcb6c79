"""One tag for every platform: the releases of an image across platforms, and the OCI index their tags serve.

`stacks push --platform linux/amd64 --platform linux/arm64` prepares one
Release per image per platform (each built and tested for its platform).
This module groups them by image, says what keeps an image from being
published (a platform not ready blocks every tag of that image, and the
message names the platform), names the per-platform tag each platform's
manifest is first pushed under, and writes the OCI image index a tag then
serves: one entry per platform, in the order the platforms were asked for,
serialised the same way every time so a re-run computes the same digest and
leaves an unchanged tag alone.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from builder.publish.release import READY, Release
from builder.reference import platform_slug

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


@dataclass
class ImageSet:
    """One image (by name) on every platform it is published for, in the order the platforms were asked."""

    name: str
    releases: dict[str, Release] = field(default_factory=dict)  # platform -> its release
    pushed: dict[str, PlatformManifest] = field(default_factory=dict)  # platform -> its manifest in the target

    @property
    def primary(self) -> Release:
        """The release whose tags the image is published under (the first platform's)."""
        return next(iter(self.releases.values()))


@dataclass(frozen=True)
class PlatformManifest:
    """A platform's image manifest as it sits in the target repository (by digest)."""

    platform: str
    digest: str
    size: int  # bytes of the manifest itself (the index's descriptor size)
    media_type: str
    compressed: int = 0  # bytes to download: config and layers


def group(by_platform: dict[str, list[Release]]) -> list[ImageSet]:
    """Releases of each platform -> one ImageSet per image, in the first platform's order (images only some
    platforms build come after, in their own platform's order)."""
    sets: dict[str, ImageSet] = {}
    for platform, releases in by_platform.items():
        for release in releases:
            sets.setdefault(release.node.name, ImageSet(release.node.name)).releases[platform] = release
    return list(sets.values())


def blocked(sets: list[ImageSet]) -> list[str]:
    """Why an image's tags must not be pushed, naming the platform: a platform not ready (not built, not tested,
    tested at another hash), or platforms whose resolved tags disagree (versions read differently)."""
    problems = []
    for image in sets:
        for platform, release in image.releases.items():
            if release.state != READY:
                problems.append(f"{image.name} for {platform}: {release.state}; run `stacks build --platform {platform} "
                                f"{image.name}` and `stacks test --platform {platform} {image.name}`")
        problems += disagreements(image)
    return problems


def disagreements(image: ImageSet) -> list[str]:
    """Platforms of a ready image whose resolved tags differ from the first platform's (versions read
    differently): the tags could not serve one index. `stacks tags` reports these as problems too."""
    primary = image.primary
    return [f"{image.name} for {platform}: its tags ({', '.join(t.name for t in release.tags)}) "
            f"differ from the other platform's ({', '.join(t.name for t in primary.tags)}); "
            "the versions its fragments read differ between platforms"
            for platform, release in image.releases.items()
            if release.state == READY and primary.state == READY and release.tags != primary.tags]


def describe_platforms(image: ImageSet) -> list[str]:
    """The lines `stacks push --dry-run` adds under an image published for several platforms: what each
    platform would contribute to the index its tags serve (its state, hash and image), in index order."""
    lines = []
    for platform, release in image.releases.items():
        what = f"image {release.image_id[:19]}" if release.image_id else "no image"
        lines.append(f"  {platform}: {release.state}, hash {release.node.short_hash}, {what}, "
                     f"first pushed as :{platform_tag(platform, release.node.hash)}")
    return lines


def platforms_json(image: ImageSet) -> dict[str, dict[str, object]]:
    """`stacks tags --json` of an image of several platforms: per platform its state, hash, image and problems."""
    return {platform: {"state": r.state, "hash": r.node.hash, "image_id": r.image_id, "problems": r.problems}
            for platform, r in image.releases.items()}


def platform_tag(platform: str, content_hash: str) -> str:
    """The tag a platform's manifest is pushed under before the shared tags serve it (as the local tags name
    a foreign build): linux-arm64-<hash12>. The hash is the platform's own, so the tag names this content only."""
    return f"{platform_slug(platform)}-{content_hash[:12]}"


def platform_fields(platform: str) -> dict[str, str]:
    """linux/arm/v7 -> {"architecture": "arm", "os": "linux", "variant": "v7"} (an index entry's platform)."""
    parts = platform.split("/")
    fields = {"architecture": parts[1], "os": parts[0]}
    if len(parts) > 2:
        fields["variant"] = parts[2]
    return fields


def index_document(manifests: list[PlatformManifest]) -> bytes:
    """The OCI image index for one tag: each platform's manifest by digest. Keys sorted, no spaces: the same
    manifests give the same bytes, hence the same digest."""
    document = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{"mediaType": m.media_type, "digest": m.digest, "size": m.size,
                       "platform": platform_fields(m.platform)} for m in manifests],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()
