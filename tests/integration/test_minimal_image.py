"""The minimal image's terminal tools, each run as users run them: `docker run IMAGE COMMAND`.

The interface switch (DOCKER_STACKS_JUPYTER_CMD=lab|notebook|server reaching
"healthy") is a health case of test_start_contract.py. The PDF image is not
built by CI's reference run (TeX Live's install time, docs/testing.md); its
conversion is the nbconvert-pdf fragment's smoke check under `make stacks`.
"""
from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.integration

# (command, what its output must contain): the first commands people type in a terminal.
TOOLS = [
    (["git", "--version"], "git version 2."),
    (["vim", "--version"], "VIM - Vi IMproved"),
    (["vi", "--version"], "VIM - Vi IMproved"),
    (["nano", "--version"], "GNU nano"),
    (["less", "--version"], "less "),
    (["ps", "-eo", "pid,comm"], "tini"),
    (["curl", "--version"], "curl "),
    (["wget", "--version"], "GNU Wget"),
    (["bash", "-c", "echo bz | bzip2 | bunzip2"], "bz"),
    (["unzip", "-v"], "UnZip"),
    (["ssh", "-V"], "OpenSSH_"),
    (["pandoc", "--version"], "pandoc "),
    (["bash", "-c", "ls /usr/share/zoneinfo/Europe/Berlin && TZ=Asia/Tokyo date +%Z"], "JST"),
    (["jupyter", "notebook", "--version"], "7."),
    (["jupyter", "nbconvert", "--version"], "7."),
]


@pytest.fixture(scope="module")
def minimal(reference: dict) -> str:
    return reference["minimal-bookworm"]["ref"]


@pytest.mark.parametrize(("command", "expect"), TOOLS, ids=[" ".join(c[:2]) if c[0] != "bash" else c[2].split()[0] for c, _ in TOOLS])
def test_the_tool_runs_as_the_container_command(minimal: str, client, command: list[str], expect: str) -> None:
    output = client.containers.run(minimal, command, remove=True, stdout=True, stderr=True,
                                   environment={"JUPYTER_DOCKER_STACKS_QUIET": "1"})
    assert expect in output.decode(errors="replace"), output.decode(errors="replace")


def test_the_lab_image_stays_lean(reference: dict, client) -> None:
    """The tools are the minimal level's: the lab image has none of them (its budget, 600 MB, relies on it)."""
    output = client.containers.run(reference["lab-bookworm"]["ref"], ["bash", "-c", "command -v git pandoc ps curl; echo end"],
                                   remove=True, environment={"JUPYTER_DOCKER_STACKS_QUIET": "1"})
    assert output.decode().split() == ["end"]


@pytest.mark.parametrize("image", ["polyglot-bookworm", "polyglot-trixie"])
def test_the_kernel_images_inherit_the_tools_and_notebook(reference: dict, client, image: str) -> None:
    output = client.containers.run(reference[image]["ref"], ["bash", "-c", "git --version && ps -p 1 -o comm= && jupyter notebook --version"],
                                   remove=True, environment={"JUPYTER_DOCKER_STACKS_QUIET": "1"})
    text = output.decode()
    assert text.startswith("git version ") and "\ntini\n" in text and re.search(r"^7\.\d+\.\d+$", text, re.MULTILINE), text
