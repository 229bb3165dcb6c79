"""Reading an image's manifest: the reader script in one container of the image, no network, nothing started.

The container's entry point is the shell running reader.sh (package data), so
neither the image's start script, nor a server, nor a kernel runs; the
fragments' version commands are handed to the script as arguments and run in
the same container. Its stdout is parsed by manifest.py.
"""
from __future__ import annotations

from importlib.resources import files

from builder.adapters.containers import VERSIONS, ContainerRunner, RunSpec
from builder.inventory.manifest import Manifest, parse_lines
from builder.plan.plan import Node
from builder.plan.versions import Probe

READ_TIMEOUT = 300  # seconds for the whole script: dpkg, every Python environment, npm, R


class ReadFailed(Exception):
    """The reader did not finish (timed out, or the image has no POSIX shell)."""


def reader_script() -> str:
    return files("builder.inventory").joinpath("reader.sh").read_text(encoding="utf-8")


def identity(node: Node, image_id: str, platform: str) -> Manifest:
    """What the manifest says the image is, before anything is read out of it."""
    return Manifest(image=node.name, hash=node.hash, image_id=image_id, parent=node.parent,
                    fragments=tuple(a.name for a in node.fragments), platform=platform)


def read_manifest(runner: ContainerRunner, ref: str, about: Manifest, probes: dict[str, Probe]) -> Manifest:
    """Run the reader in one idle container of `ref` (removed afterwards) and parse what it printed."""
    arguments = [part for probe in probes.values() for part in (probe.name, probe.command)]
    spec = RunSpec(about.image, "manifest", purpose=VERSIONS, entrypoint=["sleep"], command=["infinity"], network=False)
    with runner.run(ref, spec) as container:
        done = container.exec(["sh", "-c", reader_script(), "sh", *arguments], timeout=READ_TIMEOUT, split=True)
    if done.timed_out or done.exit_code != 0:
        why = "timed out" if done.timed_out else f"exit status {done.exit_code}: {done.error_text.strip()[-300:]}"
        raise ReadFailed(f"reading the manifest of {about.image}: {why}")
    return parse_lines(done.text, about)
