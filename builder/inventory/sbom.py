"""The manifest as a CycloneDX 1.6 SBOM (JSON), written by cyclonedx-python-lib, and read back for diffs.

Each package becomes a library component with its package URL (purl):
pkg:deb/<distro id>/NAME@VERSION?arch=&distro=, pkg:pypi, pkg:conda, pkg:npm
(JupyterLab extensions are npm packages), pkg:cran, pkg:maven/GROUP/ARTIFACT
and pkg:golang/MODULE-PATH; a JAR that names no Maven coordinates gets no
purl, only its name and version. The image itself is the
metadata component (type container); the fragments' version answers are
application components without a purl. Where a package lives (a Python
prefix, an R library) is the `stacks:environment` property, so two
environments holding one package stay two components. Serial number and
timestamp come from the image, so one image always gives the same bytes.
"""
from __future__ import annotations

import json
import uuid
import warnings
from datetime import datetime
from typing import Any

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from builder.inventory.manifest import Package, Manifest

MEDIA_TYPE = "application/vnd.cyclonedx+json"
ECOSYSTEM = "stacks:ecosystem"
ENVIRONMENT = "stacks:environment"
_PURL_TYPES = {"deb": "deb", "pypi": "pypi", "conda": "conda", "npm": "npm", "labextension": "npm", "cran": "cran",
               "maven": "maven", "golang": "golang"}


def purl(package: Package, distro: str = "") -> PackageURL | None:
    """The package URL of one package (purl-spec's type for its ecosystem); None for a JAR without coordinates."""
    kind = _PURL_TYPES[package.ecosystem]
    namespace, name, qualifiers = None, package.name, {}
    if kind == "maven":
        if ":" not in name:
            return None
        namespace, name = name.split(":", 1)
    elif kind == "golang" and "/" in name:
        namespace, name = name.rsplit("/", 1)
    elif kind == "deb":
        namespace = distro.split("-")[0] or "debian"
        qualifiers = {k: v for k, v in (("arch", package.arch), ("distro", distro)) if v}
    elif kind == "pypi":
        name = package.name.lower().replace("_", "-")
    elif kind == "npm" and name.startswith("@") and "/" in name:
        namespace, name = name.split("/", 1)
    elif kind == "conda" and package.channel:
        qualifiers = {"channel": package.channel}
    return PackageURL(type=kind, namespace=namespace, name=name, version=package.version, qualifiers=qualifiers or None)


def to_cyclonedx(manifest: Manifest) -> str:
    """The SBOM of one image: CycloneDX 1.6 JSON."""
    image = Component(type=ComponentType.CONTAINER, name=manifest.image, version=manifest.hash,
                      bom_ref=f"image:{manifest.image}",
                      properties=[Property(name=f"stacks:{k}", value=v) for k, v in (
                          ("image-id", manifest.image_id), ("parent", manifest.parent or ""),
                          ("fragments", ",".join(manifest.fragments)), ("platform", manifest.platform),
                          ("os", manifest.os)) if v])
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"stacks:{manifest.image_id}"))
    bom.metadata.component = image
    bom.metadata.timestamp = _timestamp(manifest.read) or bom.metadata.timestamp
    components = []
    for package in manifest.packages:
        properties = [Property(name=ECOSYSTEM, value=package.ecosystem)]
        if package.environment:
            properties.append(Property(name=ENVIRONMENT, value=package.environment))
        found = purl(package, manifest.distro)
        ref = found.to_string() if found is not None else f"{package.ecosystem}:{package.name}@{package.version}"
        components.append(Component(
            type=ComponentType.LIBRARY, name=package.name, version=package.version, purl=found,
            bom_ref=f"{ref}#{package.environment}" if package.environment else ref, properties=properties))
    for name, version in sorted(manifest.versions.items()):
        components.append(Component(type=ComponentType.APPLICATION, name=name, version=version,
                                    bom_ref=f"version:{name}", properties=[Property(name=ECOSYSTEM, value="version")]))
    for component in components:
        bom.components.add(component)
    bom.register_dependency(image, components)
    with warnings.catch_warnings():  # the library warns about things a flat image inventory does not have
        warnings.simplefilter("ignore")
        return JsonV1Dot6(bom).output_as_string(indent=2)


def from_cyclonedx(text: str | bytes) -> tuple[str, list[Package], dict[str, str]]:
    """(image name, packages, versions) out of an SBOM this module wrote (or any CycloneDX JSON with purls);
    ValueError when it is no CycloneDX JSON."""
    try:
        data = json.loads(text)
        if data.get("bomFormat") != "CycloneDX":
            raise ValueError("not a CycloneDX document")
        packages, versions = [], {}
        for component in data.get("components") or []:
            properties = {p.get("name"): p.get("value", "") for p in component.get("properties") or []}
            ecosystem = properties.get(ECOSYSTEM)
            if ecosystem == "version":
                versions[component["name"]] = component.get("version", "")
                continue
            if not component.get("purl"):  # ours: a JAR without Maven coordinates; anything else is not a package
                if ecosystem in _PURL_TYPES and component.get("name"):
                    packages.append(Package(ecosystem, component["name"], component.get("version") or "",
                                            environment=properties.get(ENVIRONMENT, "")))
                continue
            found = PackageURL.from_string(component["purl"])
            ecosystem = ecosystem or next((e for e, t in _PURL_TYPES.items() if t == found.type), found.type)
            name = f"{found.namespace}/{found.name}" if found.type == "npm" and found.namespace else found.name
            qualifiers: dict[str, Any] = found.qualifiers if isinstance(found.qualifiers, dict) else {}
            packages.append(Package(ecosystem, component.get("name") or name, component.get("version") or found.version or "",
                                    environment=properties.get(ENVIRONMENT, ""), arch=qualifiers.get("arch", ""),
                                    channel=qualifiers.get("channel", "")))
        image = ((data.get("metadata") or {}).get("component") or {}).get("name", "")
        return image, packages, versions
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a readable CycloneDX document: {exc}") from None


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
