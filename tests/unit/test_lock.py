"""stacks.lock: parsing (errors at file:line), the pins fragments write, entries from built images, and
what a lock entry does to an image's Dockerfile and content hash."""
from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import SpecError
from builder.plan.lock import CONSTRAINTS_FILE, CONSTRAINTS_TARGET, Pins, apply_lock, constraints, entry_from, pins
from builder.specification.lock import LockEntry, load_lock, lock_text

from .helpers import plan_of

SPEC = """
bases:
  debian: {pull: "debian:12", provides: [shell]}
images:
  app:
    base: debian
    fragments: [installer]
  child:
    parent: app
    fragments: [more]
"""
FRAGMENTS = {
    "installer": {"meta": {}, "body": 'RUN pip install -q "requests==2.32.3" six && npm install -g --omit=dev "tslab@1.0.22"\n'},
    "more": {"meta": {}, "body": "RUN python -m pip install --no-cache-dir idna\n"},
}
ENTRY = LockEntry({"six": "1.16.0", "requests": "2.0.0", "idna": "3.10"}, {"zeromq": "6.0.0"}, "2026-12-01T10:00:00Z")


def write_lock(folder: Path, entries: dict[str, LockEntry]) -> Path:
    path = folder / "stacks.lock"
    path.write_text(lock_text(entries))
    return path


def test_the_lock_text_reads_back_as_written(tmp_path: Path) -> None:
    entries = {"app": ENTRY, "true": LockEntry({"zipp": "3.10"}, {}, "2026-12-01T10:00:00Z")}
    lock, problems = load_lock(write_lock(tmp_path, entries))
    assert problems == []
    assert {name: entry.document() for name, entry in lock.images.items()} == {n: e.document() for n, e in entries.items()}
    assert '  zipp: "3.10"' in lock_text(entries).replace("    ", "", 1)  # quoted: YAML would read 3.10 as 3.1


def test_a_missing_lock_is_an_empty_one(tmp_path: Path) -> None:
    lock, problems = load_lock(tmp_path / "stacks.lock")
    assert lock.images == {} and problems == []


@pytest.mark.parametrize("text, line, message", [
    ("version: 1\nimages:\n  app:\n    resolved: \"2026-12-01T10:00:00Z\"\n    pip: {six: 1.10}\n", 5,
     "version must be a quoted string"),
    ("version: 1\nimages:\n  app:\n    resolved: \"2026-12-01T10:00:00Z\"\n    pip:\n      six: \"not a version\"\n", 6,
     "is not a Python version"),
    ("version: 1\nimages:\n  app:\n    resolved: yesterday\n", 4, "resolved must be a UTC time"),
    ("version: 1\nimages:\n  app:\n    resolved: \"2026-12-01T10:00:00Z\"\n    npm: {Bad Name: \"1.0.0\"}\n", 5,
     "not an npm package name"),
    ("version: 1\nimages:\n  app:\n    resolved: \"2026-12-01T10:00:00Z\"\n    conda: {}\n", 5, "unknown key 'conda'"),
    ("version: 2\nimages: {}\n", 1, "lock format version must be 1"),
    ("version: 1\nimages: [app]\n", 2, "'images' must map image names"),
    ("version: 1\nimages:\n  app: {pip: {six: \"1.0\"\n", 4, "YAML syntax error"),
])
def test_a_lock_edited_into_nonsense_is_refused_at_its_line(stack, text: str, line: int, message: str) -> None:
    path = stack(SPEC, FRAGMENTS)
    (path.parent / "stacks.lock").write_text(text)
    with pytest.raises(SpecError) as caught:
        plan_of(path)
    found = [p for p in caught.value.problems if message in p.message]
    assert found, [str(p) for p in caught.value.problems]
    assert found[0].location is not None and found[0].location.file.name == "stacks.lock"
    assert found[0].location.line == line


def test_pins_are_read_from_pip_and_npm_commands_only() -> None:
    text = ('FROM x\nRUN python3 -c \'import sys; sys.exit(v == "3.11")\' \\\n'
            '    && /opt/venv/bin/python -m pip install -q --upgrade "pip==26.3" "Jupyter_Server[test]==2.1.0" \\\n'
            '    && npm install -g "@scope/tool@1.2.3" left-pad\nRUN echo "a==1"\n')
    assert pins(text) == Pins({"pip": "26.3", "jupyter-server": "2.1.0"}, {"@scope/tool": "1.2.3"})


def test_an_entry_holds_what_the_image_has_but_no_pin() -> None:
    pip_list = [{"name": "Requests", "version": "2.32.3"}, {"name": "six", "version": "1.17.0"},
                {"name": "odd", "version": "not-pep440"}]
    tree = {"dependencies": {
        "tslab": {"version": "1.0.22", "dependencies": {"zeromq": {"version": "6.0.0"},
                                                         "x": {"version": "1.0.0", "dependencies": {"zeromq": {"version": "6.1.0"}}}}},
        "npm": {"version": "10.9.4", "dependencies": {"abbrev": {"version": "2.0.0"}}},
    }}
    entry = entry_from(pip_list, tree, Pins({"requests": "2.32.3"}, {"tslab": "1.0.22"}), "2026-12-03T05:00:00.123456789Z")
    assert entry.pip == {"six": "1.17.0"}
    assert entry.npm == {"zeromq": "6.1.0", "x": "1.0.0"}  # npm's own tree is left out; the newest copy of a name
    assert entry.resolved == "2026-12-03T05:00:00Z"


def test_a_pin_added_after_locking_wins_over_the_lock() -> None:
    assert constraints(ENTRY, Pins({"requests": "2.32.3"}, {})) == "idna==3.10\nsix==1.16.0\n"


def test_a_lock_entry_constrains_the_build_and_changes_the_hash(stack) -> None:
    path = stack(SPEC, FRAGMENTS)
    before = plan_of(path)
    write_lock(path.parent, {"child": ENTRY})
    after = plan_of(path)
    assert after["app"].hash == before["app"].hash  # no entry: the hash it had before
    child = after["child"]
    assert child.hash != before["child"].hash and child.inputs["lock"]
    assert child.rendered is not None
    text = child.rendered.files[CONSTRAINTS_FILE][0].decode()
    assert text == "idna==3.10\nsix==1.16.0\n"  # requests is pinned by the parent's fragment
    lines = child.rendered.dockerfile.split("\n")
    start = lines.index(f"COPY {CONSTRAINTS_FILE} {CONSTRAINTS_TARGET}")
    assert lines[start - 3].startswith("FROM ") and lines[start - 2].startswith("ARG ") and lines[start - 1].startswith("# ---")
    assert lines[start + 1:start + 3] == [f"ARG PIP_CONSTRAINT={CONSTRAINTS_TARGET}", "ARG NPM_CONFIG_BEFORE=2026-12-01T10:00:00Z"]
    assert lines.index(f"ARG PIP_CONSTRAINT={CONSTRAINTS_TARGET}") < lines.index("# --- fragment: more ---")

    write_lock(path.parent, {"child": LockEntry({**ENTRY.pip, "six": "1.17.0"}, ENTRY.npm, ENTRY.resolved)})
    assert plan_of(path)["child"].hash != child.hash


def test_an_entry_with_nothing_left_to_constrain_changes_nothing(stack) -> None:
    path = stack(SPEC, FRAGMENTS)
    before = plan_of(path)
    write_lock(path.parent, {"app": LockEntry({"requests": "2.0.0"}, {}, "2026-12-01T10:00:00Z")})
    assert plan_of(path)["app"].hash == before["app"].hash
    assert before["app"].rendered is not None
    assert apply_lock(before["app"].rendered, LockEntry(), Pins({}, {}))[1] == ""


def test_an_edited_lock_is_a_change_a_build_receipt_notices(stack) -> None:
    from builder.app import noop

    path = stack(SPEC, FRAGMENTS)
    inputs = noop.receipt_inputs(plan_of(path), (), {})
    assert (path.parent / "stacks.lock").resolve() in inputs  # not there yet: hashed as missing, then as written
