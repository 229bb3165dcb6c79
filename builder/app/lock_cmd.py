"""`stacks lock [--update] [IMAGES]`: write what built images resolved into stacks.lock.

An image's lock entry is part of its content hash, so an entry is read from
the image built *without* it: entries to (re)write are taken out of the
lock first, those images are built (usually found built already), their
package lists read (one container each), and the lock written with the new
entries. Entries of other images stay as they are. When the build fails the
lock file is put back as it was. The next `stacks build` builds the locked
images from the lock: a new content hash, the same packages.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from builder.app.commands import run_build, workspace
from builder.check.installed import ReadFailed, read_installed
from builder.files import atomic_write
from builder.plan.lock import chain_pins, entry_from
from builder.plan.plan import Node, Plan
from builder.specification.lock import LockEntry, lock_text


def run_lock(spec_file: Path, images: list[str], update: bool, jobs: int | None, out: Path,
             ca_certs: tuple[Path, ...], only_verified: bool) -> int:
    """Lock the selected images (default: all) that have no entry, or with `update` all of them anew."""
    ws = workspace(spec_file, out)
    plan = ws.plan()
    lock = plan.spec.lock
    known = {node.name for node in plan.images()}
    nodes = [n for n in ws.select(plan, images, only_verified) if n.kind == "image"]
    if images:
        wanted = set(images)
        nodes = [n for n in nodes if n.name in wanted or n.image in wanted]
    refresh = [n.name for n in nodes if update or n.name not in lock.images]
    kept = {name: entry for name, entry in lock.images.items() if name in known and name not in refresh}
    for name in sorted(set(lock.images) - known):
        ws.say(f"{lock.path.name}: dropping the entry of '{name}': no such image in the plan")
    if not refresh:
        ws.say(f"{lock.path.name}: every selected image is locked already; `stacks lock --update [IMAGE]` resolves anew")
        return 0
    original = lock.path.read_bytes() if lock.path.is_file() else None
    _write(lock.path, kept)
    ws.say(f"resolving {len(refresh)} images without their lock entries: {', '.join(refresh)}")
    code = run_build(spec_file, refresh, jobs, False, out, ca_certs, only_verified)
    if code != 0:
        _restore(lock.path, original)
        ws.say(f"{lock.path.name} left as it was: the build failed")
        return code
    unlocked = workspace(spec_file, out)
    plan = unlocked.build_plan
    entries = dict(kept)
    try:
        for name in refresh:
            entries[name] = _entry(plan, plan[name], unlocked.engine.image, unlocked.engine.containers)
    except ReadFailed as exc:
        _restore(lock.path, original)
        raise click.ClickException(f"{exc}; {lock.path.name} left as it was") from None
    _write(lock.path, entries)
    pip = sum(len(entries[name].pip) for name in refresh)
    npm = sum(len(entries[name].npm) for name in refresh)
    ws.say(f"wrote {lock.path}: {len(refresh)} images locked ({pip} Python and {npm} npm package versions); "
           "the next `stacks build` builds them from the lock")
    return 0


def _entry(plan: Plan, node: Node, image_of: Callable, containers) -> LockEntry:
    """The lock entry of `node` from its built image, without what its chain of fragments pins."""
    image = image_of(node.local_ref)
    if image is None:
        raise ReadFailed(f"{node.name}: not built ({node.local_ref})")
    installed = read_installed(containers, node.local_ref, node.name)
    lineage, current = [], node
    while True:
        if current.rendered is not None:
            lineage.append(current.rendered.dockerfile)
        if current.parent is None:
            break
        current = plan[current.parent]
    return entry_from(installed.pip, installed.npm, chain_pins(lineage), image.created)


def _write(path: Path, entries: dict[str, LockEntry]) -> None:
    atomic_write(path, lock_text(entries).encode())


def _restore(path: Path, original: bytes | None) -> None:
    if original is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, original)
