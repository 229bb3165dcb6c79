"""Rendering is deterministic; content hashes change exactly when an image's inputs change."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from builder.plan.hashing import explain_change, hash_inputs
from builder.owned import MANIFEST
from builder.plan.render import CA_ARGS, CA_SECRET, MIRROR_ARGS, write_context

from .helpers import make_stack, plan_of

ARG_LINE = "ARG " + " ".join(CA_ARGS + MIRROR_ARGS)
MOUNT = f"RUN --mount=type=secret,id={CA_SECRET},mode=0444 "

TREE = """
axes:
  os: [bookworm, trixie]
bases:
  debian: {pull: "debian:{{ os }}"}
images:
  root:
    base: debian
    axes: [os]
    fragments: [os]
  left:
    parent: root
    fragments: [{use: py, params: {version: "3.12"}}, shipped]
  leaf:
    parent: left
    fragments: [tool]
    build_args: {FLAVOUR: plain}
  right:
    parent: root
    fragments: [lab-ish]
"""

FRAGMENTS = {
    "shipped": {
        "body": "COPY {{ here }}/run.sh /usr/local/bin/run\nCOPY {{ here }}/conf.txt /etc/conf.txt\n",
        "files": {"run.sh": "#!/bin/sh\necho run\n", "conf.txt.j2": "image={{ image.name }}\n"},
        "executable": ("run.sh",),
    },
    "lab-ish": {"body": "RUN echo lab\n"},
    "os-free": {"body": "RUN echo free\n"},
    "unused": {"body": "RUN echo unused\n"},
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_stack(tmp_path / "tree", TREE, FRAGMENTS)


def hashes(path: Path, mode: str = "buildkit") -> dict[str, str]:
    return {node.name: node.hash for node in plan_of(path, mode)}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert set(before) == set(after)
    return {name for name in before if before[name] != after[name]}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


# --- determinism --------------------------------------------------------------


def test_render_twice_is_byte_identical(tree: Path) -> None:
    first, second = plan_of(tree), plan_of(tree)
    for a, b in zip(first.images(), second.images()):
        assert a.name == b.name and a.hash == b.hash
        assert a.rendered.dockerfile == b.rendered.dockerfile
        assert a.rendered.files == b.rendered.files
    assert len(first.images()) == 8


def test_files_of_the_context(tree: Path) -> None:
    node = plan_of(tree)["left-trixie"]
    assert node.rendered.files == {
        "fragments/shipped/conf.txt": (b"image=left-trixie\n", 0o644),
        "fragments/shipped/run.sh": (b"#!/bin/sh\necho run\n", 0o755),
    }


def test_write_context_writes_modes_and_removes_stale_files(tree: Path, tmp_path: Path) -> None:
    node = plan_of(tree)["left-bookworm"]
    out = tmp_path / "ctx"
    write_context(node.rendered, out)
    (out / "fragments" / "gone").mkdir(parents=True)
    (out / "fragments" / "gone" / "old.txt").write_text("stale")
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "files": manifest["files"] + ["fragments/gone/old.txt"]}))
    write_context(node.rendered, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    assert files == ["Dockerfile", "fragments/shipped/conf.txt", "fragments/shipped/run.sh"]
    assert not (out / "fragments" / "gone").exists()
    assert os.stat(out / "fragments/shipped/run.sh").st_mode & 0o777 == 0o755
    assert (out / "Dockerfile").read_text() == node.rendered.dockerfile


# --- Dockerfile text ---------------------------------------------------------


def render_one(tmp_path: Path, body: str, mode: str = "buildkit", stage: str | None = None) -> str:
    files = {"stage.Dockerfile.j2": stage} if stage else {}
    path = make_stack(tmp_path / f"one-{mode}", """
bases:
  debian: {pull: "debian:12"}
images:
  one: {base: debian, fragments: [f]}
""", {"f": {"body": body, "files": files}}, basic=False)
    return plan_of(path, mode)["one"].rendered.dockerfile


def test_dockerfile_layout(tmp_path: Path) -> None:
    text = render_one(tmp_path, "RUN echo hi\nENV A=1\n")
    assert text == textwrap.dedent(f"""\
        # Rendered by stacks for image 'one'. Edit the fragments, not this file.
        FROM debian:12
        {ARG_LINE}

        # --- fragment: f ---
        {MOUNT}echo hi
        ENV A=1
        """)


def test_run_lines_get_the_ca_mount_and_continuations_are_untouched(tmp_path: Path) -> None:
    body = (
        "RUN apt-get install -y \\\n"
        "    run \\\n"
        "    RUN x\n"
        "  run echo lower-case and indented\n"
        "# RUN in a comment \\\n"
        "RUN echo after-comment\n"
        'RUN ["echo", "exec form"]\n'
        "ENV RUNNER=1\n"
    )
    lines = render_one(tmp_path, body).split("\n")
    start = lines.index("# --- fragment: f ---") + 1
    assert lines[start:start + 8] == [
        f"{MOUNT}apt-get install -y \\",
        "    run \\",
        "    RUN x",
        "  RUN --mount=type=secret,id=stacks-ca,mode=0444 echo lower-case and indented",
        "# RUN in a comment \\",
        f"{MOUNT}echo after-comment",
        f'{MOUNT}["echo", "exec form"]',
        "ENV RUNNER=1",
    ]


def test_arg_line_after_every_from_and_mount_in_stages(tmp_path: Path) -> None:
    text = render_one(tmp_path, "COPY --from=build /out /out\n", stage="FROM debian:12 AS build\nRUN make\n")
    lines = text.split("\n")
    froms = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert [lines[i] for i in froms] == ["FROM debian:12 AS build", "FROM debian:12"]
    assert all(lines[i + 1] == ARG_LINE for i in froms)
    assert f"{MOUNT}make" in lines
    assert froms[0] < lines.index(f"{MOUNT}make") < froms[1]


def test_classic_mode_has_no_mounts(tmp_path: Path) -> None:
    body = "RUN {{ cache.apt }} apt-get update\nRUN {{ cache.pip }} pip install x\n"
    classic = render_one(tmp_path, body, mode="classic")
    assert "--mount" not in classic
    assert ARG_LINE in classic
    assert "RUN  apt-get update" in classic  # the cache flag renders empty
    buildkit = render_one(tmp_path, body)
    assert "--mount=type=cache,target=/var/cache/apt,id=stacks-apt-debian" in buildkit
    assert "--mount=type=cache,target=/root/.cache/pip,id=stacks-pip pip install x" in buildkit


def test_mode_is_part_of_the_hash(tree: Path) -> None:
    assert changed(hashes(tree), hashes(tree, "classic")) == {n for n in hashes(tree) if not n.startswith("debian")}


# --- what changes a hash -------------------------------------------------------


def test_fragment_template_change_moves_its_image_and_descendants(tree: Path) -> None:
    before = hashes(tree)
    edit(tree.parent / "fragments/shipped/Dockerfile.j2", "/etc/conf.txt", "/etc/conf2.txt")
    assert changed(before, hashes(tree)) == {"left-bookworm", "left-trixie", "leaf-bookworm", "leaf-trixie"}


def test_parent_change_moves_child_and_grandchild_not_siblings(tree: Path) -> None:
    before = hashes(tree)
    edit(tree.parent / "fragments/py/Dockerfile.j2", "RUN echo python", "RUN echo Python")
    assert changed(before, hashes(tree)) == {"left-bookworm", "left-trixie", "leaf-bookworm", "leaf-trixie"}
    before = hashes(tree)
    edit(tree.parent / "fragments/os/Dockerfile.j2", "os.txt", "os2.txt")
    assert changed(before, hashes(tree)) == {n for n in before if not n.startswith("debian-")}


def test_one_axis_value_only(tree: Path) -> None:
    before = hashes(tree)
    edit(tree, 'pull: "debian:{{ os }}"', 'pull: "{% if os == \'trixie\' %}debian:13{% else %}debian:{{ os }}{% endif %}"')
    assert changed(before, hashes(tree)) == {
        "debian-trixie", "root-trixie", "left-trixie", "leaf-trixie", "right-trixie"}


def test_context_file_content_change(tree: Path) -> None:
    before = hashes(tree)
    edit(tree.parent / "fragments/shipped/run.sh", "echo run", "echo RUN")
    assert changed(before, hashes(tree)) == {"left-bookworm", "left-trixie", "leaf-bookworm", "leaf-trixie"}


def test_context_file_mode_change(tree: Path) -> None:
    before = hashes(tree)
    os.chmod(tree.parent / "fragments/shipped/run.sh", 0o644)
    assert changed(before, hashes(tree)) == {"left-bookworm", "left-trixie", "leaf-bookworm", "leaf-trixie"}


def test_build_arg_change(tree: Path) -> None:
    before = hashes(tree)
    edit(tree, "FLAVOUR: plain", "FLAVOUR: fancy")
    assert changed(before, hashes(tree)) == {"leaf-bookworm", "leaf-trixie"}


def test_param_change(tree: Path) -> None:
    before = hashes(tree)
    edit(tree, 'version: "3.12"', 'version: "3.13"')
    assert changed(before, hashes(tree)) == {"left-bookworm", "left-trixie", "leaf-bookworm", "leaf-trixie"}


def test_unrelated_changes_leave_hashes_alone(tree: Path) -> None:
    before = hashes(tree)
    edit(tree.parent / "fragments/unused/Dockerfile.j2", "unused", "still unused")
    (tree.parent / "fragments/new").mkdir()
    (tree.parent / "fragments/new/fragment.yaml").write_text("name: new\ndescription: new\n")
    (tree.parent / "fragments/new/Dockerfile.j2").write_text("RUN echo new\n")
    edit(tree, "fragments: [lab-ish]", "fragments: [lab-ish, tool]\n  extra:\n    parent: leaf\n    fragments: [new]")
    after = hashes(tree)
    assert {n for n in after if n not in before} == {"extra-bookworm", "extra-trixie"}
    assert changed(before, {n: after[n] for n in before}) == {"right-bookworm", "right-trixie"}


def test_per_run_settings_are_not_hashed(tree: Path) -> None:
    before = hashes(tree)
    edit(tree, "axes:\n", textwrap.dedent("""\
        settings:
          registry: {host: registry.example.com, namespace: team}
          tags: ["{{ variant }}", "{{ variant }}-{{ hash[:8] }}"]
          build:
            pip_index_url: https://pypi.example.com/simple
            ca_certificates: [/etc/ssl/certs/corp.pem]
            jobs: 3
        axes:
        """))
    assert hashes(tree) == before


# --- explain_change ------------------------------------------------------------


def inputs(path: Path, name: str) -> dict:
    return plan_of(path)[name].inputs


def test_hash_is_the_hash_of_the_inputs(tree: Path) -> None:
    node = plan_of(tree)["leaf-trixie"]
    assert node.hash == hash_inputs(node.inputs)
    assert node.inputs["parent"] == plan_of(tree)["left-trixie"].hash


def test_explain_change_reasons(tree: Path) -> None:
    old_leaf, old_left = inputs(tree, "leaf-trixie"), inputs(tree, "left-trixie")
    assert explain_change(None, old_leaf) == ["never built"]
    assert explain_change({**old_leaf, "format": 0}, old_leaf) == ["hash format changed"]

    edit(tree, "FLAVOUR: plain", "FLAVOUR: fancy")
    assert explain_change(old_leaf, inputs(tree, "leaf-trixie")) == ["build argument FLAVOUR changed"]

    edit(tree.parent / "fragments/shipped/run.sh", "echo run", "echo RUN")
    edit(tree.parent / "fragments/py/Dockerfile.j2", "RUN echo python", "RUN echo Python")
    assert explain_change(old_left, inputs(tree, "left-trixie")) == [
        "fragment 'py' changed (Dockerfile.j2 or its params)",
        "file fragments/shipped/run.sh changed",
    ]
    assert explain_change(old_leaf, inputs(tree, "leaf-trixie")) == ["parent image changed", "build argument FLAVOUR changed"]


def test_explain_added_and_removed_fragments_and_files(tree: Path) -> None:
    old = inputs(tree, "left-bookworm")
    edit(tree, 'fragments: [{use: py, params: {version: "3.12"}}, shipped]', 'fragments: [{use: py, params: {version: "3.12"}}, lab-ish]')
    edit(tree, "fragments: [lab-ish]", "fragments: [os-free]")
    assert explain_change(old, inputs(tree, "left-bookworm")) == [
        "fragment 'lab-ish' added",
        "fragment 'shipped' removed",
        "file fragments/shipped/conf.txt removed",
        "file fragments/shipped/run.sh removed",
    ]


def test_explain_mode_change(tree: Path) -> None:
    old = plan_of(tree, "classic")["root-bookworm"].inputs
    assert explain_change(old, inputs(tree, "root-bookworm")) == ["render mode changed"]
