"""`stacks sbom` and `stacks diff`: find what is inside an image, here or in a registry, and talk to the user.

An argument names a local image (an image of stacks.yaml, or any local
reference) unless its first part is a registry host (`HOST[:PORT]/...`, as
Docker reads references): then it is looked up in that registry, by tag or
digest, and its SBOM is the one `stacks push` attached there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from builder.adapters.credentials import CredentialError
from builder.adapters.registry import Registry, RegistryError
from builder.app.workspace import Workspace
from builder.files import atomic_write
from builder.inventory.attached import NoSbom, find_sbom
from builder.inventory.diff import diff, markdown
from builder.inventory.manifest import Manifest, Package
from builder.inventory.read import ReadFailed, read_manifest
from builder.inventory.sbom import from_cyclonedx, to_cyclonedx
from builder.inventory.taking import take
from builder.plan.plan import HASH_LABEL, Node
from builder.plan.labels import NAME_LABEL
from builder.plan.versions import probes
from builder.reference import ImageRef, InvalidReference, split_registry


@dataclass(frozen=True)
class Contents:
    """One side of a diff: what an image holds, however it was found."""

    label: str
    packages: list[Package]
    versions: dict[str, str]


def is_remote(text: str) -> bool:
    """A reference whose first component is a registry host."""
    return split_registry(text.split("@")[0])[0] is not None


def local_manifest(ws: Workspace, text: str) -> Manifest:
    """The manifest of a local image: an image of the plan by name, else any local reference; read once per
    image id (the store), so a tested image is not read again."""
    node = _node(ws, text)
    ref = node.local_ref if node is not None else text
    image = ws.engine.image(ref)
    if image is None:
        raise click.ClickException(f"no image {text} here" + (": run `stacks build` first" if node is not None else
                                   " (neither an image of the stacks file nor a local image reference)"))
    found = ws.manifests.get(image.id)
    if found is not None:
        return found
    try:
        if node is not None and image.labels.get(HASH_LABEL) == node.hash:
            return take(ws.engine.containers, ws.manifests, node, image.id, image.platform,
                        probes(node.chain, ws.build_plan[node.root].base))
        about = Manifest(image=image.labels.get(NAME_LABEL) or text, hash=image.labels.get(HASH_LABEL, ""),
                         image_id=image.id, parent=None, fragments=(), platform=image.platform)
        manifest = read_manifest(ws.engine.containers, ref, about, {})
    except ReadFailed as exc:
        raise click.ClickException(str(exc)) from None
    ws.manifests.put(manifest)
    return manifest


def remote_sbom(ws: Workspace, text: str) -> bytes:
    """The SBOM attached to the image a registry reference points at; a clear error for a tag that does not
    exist and for an image without an SBOM."""
    try:
        ref = ImageRef.parse(text)
        api = Registry(ref.registry, ws.keychain.lookup(ref.registry))
        digest = ref.digest or api.head(ref.repository, ref.tag or "latest")
        if digest is None:
            raise click.ClickException(f"{text}: no such tag in {ref.registry} (repository {ref.repository}, "
                                       f"tag {ref.tag or 'latest'})")
        return find_sbom(api, ref.repository, digest)
    except (InvalidReference, CredentialError, RegistryError) as exc:
        raise click.ClickException(f"{text}: {exc}") from None
    except NoSbom as exc:
        raise click.ClickException(f"{exc}; `stacks push` attaches one to every image it publishes") from None


def contents(ws: Workspace, text: str) -> Contents:
    if is_remote(text):
        try:
            _, packages, versions = from_cyclonedx(remote_sbom(ws, text))
        except ValueError as exc:
            raise click.ClickException(f"{text}: the SBOM attached there is not readable: {exc}") from None
        return Contents(text, packages, versions)
    manifest = local_manifest(ws, text)
    return Contents(f"{text} ({manifest.hash[:12] or manifest.image_id[:19]})", list(manifest.packages), manifest.versions)


def run_sbom(spec_file: Path, target: str, out: Path | None) -> int:
    """`stacks sbom`: print or write the CycloneDX SBOM of a local image or of a pushed one."""
    ws = Workspace(spec_file=spec_file)
    data = remote_sbom(ws, target) if is_remote(target) else to_cyclonedx(local_manifest(ws, target)).encode()
    if out is None:
        click.echo(data.decode(), nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, data)
        click.echo(f"wrote {out} ({len(data)} bytes)", err=True)
    return 0


def run_diff(spec_file: Path, before: str, after: str, as_json: bool) -> int:
    """`stacks diff`: per ecosystem what was added, removed, upgraded and downgraded from BEFORE to AFTER."""
    ws = Workspace(spec_file=spec_file)
    a, b = contents(ws, before), contents(ws, after)
    result = diff(a.label, b.label, a.packages, b.packages, a.versions, b.versions)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else markdown(result))
    return 0


def _node(ws: Workspace, name: str) -> Node | None:
    """The plan's image of that name, when there is a stacks file and it has one."""
    if not ws.spec_file.exists() or ":" in name or "/" in name:
        return None
    try:
        node = ws.build_plan[name]
    except KeyError:
        return None
    return node if node.kind == "image" else None

