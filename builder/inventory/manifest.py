"""An image's package manifest: the facts the reader script printed, parsed into one JSON document.

The reader (reader.sh, shipped as package data) prints one tab-separated fact
per line; this module turns those lines into a `Manifest` and back into JSON
and Markdown. Unknown or malformed lines are skipped: an image with a strange
tool gives a shorter manifest, never a failed test.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

#: Package ecosystems, in the order manifests and diffs list them.
ECOSYSTEMS = ("deb", "pypi", "conda", "npm", "labextension", "cran", "maven", "golang")
TITLES = {"deb": "Debian packages", "pypi": "Python packages", "conda": "Conda packages", "npm": "npm global packages",
          "labextension": "JupyterLab extensions", "cran": "R packages", "maven": "Java artifacts (JARs)",
          "golang": "Go modules (in Go binaries)"}
#: ecosystems whose packages say where they live: a prefix, a library, the folder of a jar, a Go binary
LOCATED = ("pypi", "conda", "cran", "maven", "golang")
FORMAT = 2  # bump when the JSON shape or what the reader finds changes (2: JARs and Go modules); an image
#            whose stored manifest is of another format is read again


@dataclass(frozen=True, order=True)
class Package:
    """One installed package. `environment`: where it lives when an image may hold several (a Python or conda
    prefix, an R library, the folder of a JAR, a Go binary); `arch`: a Debian package's architecture;
    `channel`: a conda package's. A Java artifact's name is groupId:artifactId when its JAR says so."""

    ecosystem: str
    name: str
    version: str
    environment: str = ""
    arch: str = ""
    channel: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies "the same package" in two images (a diff compares versions under one key)."""
        name = self.name.lower().replace("_", "-") if self.ecosystem == "pypi" else self.name
        return self.ecosystem, self.environment, name


@dataclass(frozen=True)
class Kernel:
    """A Jupyter kernelspec as installed (kernel.json): found without starting it."""

    name: str
    language: str
    display_name: str
    path: str


@dataclass(frozen=True)
class Manifest:
    """Everything one image holds, with what it is: name, content hash, image id, parent, fragments, platform."""

    image: str
    hash: str
    image_id: str
    parent: str | None
    fragments: tuple[str, ...]
    platform: str
    os: str = ""  # PRETTY_NAME of /etc/os-release
    distro: str = ""  # ID-VERSION_ID ("debian-12"): the purl qualifier of Debian packages
    environments: dict[str, str] = field(default_factory=dict)  # Python prefix -> Python version
    packages: tuple[Package, ...] = ()
    kernels: tuple[Kernel, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)  # the fragments' version commands: name -> version
    read: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def of(self, ecosystem: str) -> list[Package]:
        return [p for p in self.packages if p.ecosystem == ecosystem]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        data["counts"] = {e: len(self.of(e)) for e in ECOSYSTEMS if self.of(e)}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """The manifest a `to_dict` wrote; ValueError for anything else."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"manifest format {data.get('format')!r}, expected {FORMAT}")
            return cls(
                image=data["image"], hash=data["hash"], image_id=data["image_id"], parent=data.get("parent"),
                fragments=tuple(data.get("fragments") or ()), platform=data.get("platform", ""), os=data.get("os", ""),
                distro=data.get("distro", ""), environments=dict(data.get("environments") or {}),
                packages=tuple(Package(**p) for p in data.get("packages") or ()),
                kernels=tuple(Kernel(**k) for k in data.get("kernels") or ()),
                versions=dict(data.get("versions") or {}), read=data.get("read", ""),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a stacks manifest: {exc}") from None


def parse_lines(text: str, about: Manifest) -> Manifest:
    """The reader's output, filled into `about` (a Manifest with the image's identity and nothing read yet)."""
    packages: set[Package] = set()
    kernels: dict[str, Kernel] = {}
    environments: dict[str, str] = {}
    versions: dict[str, str] = {}
    os_name = distro = ""
    for line in text.splitlines():
        kind, *fields = line.rstrip("\r").split("\t")
        if kind == "os" and len(fields) >= 3:
            distro = "-".join(part for part in fields[:2] if part)
            os_name = fields[2]
        elif kind == "deb" and len(fields) >= 3:
            packages.add(Package("deb", fields[0], fields[1], arch=fields[2]))
        elif kind == "env" and len(fields) >= 2:
            environments[fields[0]] = fields[1]
        elif kind == "pypi" and len(fields) >= 3:
            packages.add(Package("pypi", fields[1], fields[2], environment=fields[0]))
        elif kind == "conda" and len(fields) >= 3:
            packages.add(Package("conda", fields[1], fields[2], environment=fields[0], channel=_at(fields, 3)))
        elif kind == "npm" and len(fields) >= 2 and fields[0]:
            packages.add(Package("npm", fields[0], fields[1]))
        elif kind == "labext" and len(fields) >= 2:
            packages.add(Package("labextension", fields[0], fields[1]))
        elif kind == "cran" and len(fields) >= 2:
            packages.add(Package("cran", fields[0], fields[1], environment=_at(fields, 2)))
        elif kind == "maven" and len(fields) >= 3 and fields[0] and fields[1]:
            packages.add(Package("maven", fields[0], fields[1], environment=posixpath.dirname(fields[2])))
        elif kind == "golang" and len(fields) >= 3 and fields[0] and fields[1]:
            packages.add(Package("golang", fields[0], fields[1], environment=fields[2]))
        elif kind == "kernel" and len(fields) >= 4:
            kernels.setdefault(fields[0], Kernel(fields[0], fields[1], fields[2], fields[3]))
        elif kind == "version" and len(fields) >= 2 and fields[1].strip():
            versions[fields[0]] = fields[1].strip()
    ordered = sorted(packages, key=lambda p: (ECOSYSTEMS.index(p.ecosystem), p.environment, p.name.lower(), p.version))
    return replace(about, os=os_name, distro=distro, environments=environments, packages=tuple(ordered),
                   kernels=tuple(sorted(kernels.values(), key=lambda k: k.name)), versions=versions)


def markdown(manifest: Manifest) -> str:
    """The manifest as a page: what the image is, then a table per ecosystem."""
    lines = [f"# {manifest.image}", "",
             "| | |", "|---|---|",
             f"| content hash | `{manifest.hash}` |", f"| image id | `{manifest.image_id}` |",
             f"| parent | {manifest.parent or '-'} |", f"| fragments | {', '.join(manifest.fragments) or '-'} |",
             f"| platform | {manifest.platform} |", f"| operating system | {manifest.os or '-'} |",
             f"| read | {manifest.read} |", ""]
    if manifest.versions:
        lines += ["## Versions", "", "| name | version |", "|---|---|"]
        lines += [f"| {name} | {_cell(version)} |" for name, version in sorted(manifest.versions.items())]
        lines.append("")
    if manifest.kernels:
        lines += ["## Jupyter kernels", "", "| kernelspec | language | display name |", "|---|---|---|"]
        lines += [f"| {k.name} | {k.language} | {_cell(k.display_name)} |" for k in manifest.kernels]
        lines.append("")
    for ecosystem in ECOSYSTEMS:
        found = manifest.of(ecosystem)
        if not found:
            continue
        where = ecosystem in LOCATED
        lines += [f"## {TITLES[ecosystem]} ({len(found)})", ""]
        lines += ["| name | version | environment |", "|---|---|---|"] if where else ["| name | version |", "|---|---|"]
        for p in found:
            lines.append(f"| {p.name} | {_cell(p.version)} | {p.environment} |" if where else f"| {p.name} | {_cell(p.version)} |")
        lines.append("")
    return "\n".join(lines)


def _at(fields: list[str], index: int) -> str:
    return fields[index] if len(fields) > index else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
