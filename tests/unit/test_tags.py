"""Tags and repositories are checked at plan time."""
from __future__ import annotations

import pytest

from builder.errors import SpecError
from builder.plan.tags import repository
from builder.reference import is_tag

from .helpers import plan_of

AXES = """
axes:
  os: [bookworm, trixie]
  python: ["3.11", "3.12"]
bases:
  debian: {pull: "debian:{{ os }}"}
"""


def plan_problems(path) -> list:
    with pytest.raises(SpecError) as excinfo:
        plan_of(path)
    return excinfo.value.problems


def test_default_tags(stack) -> None:
    path = stack(AXES + """
images:
  foundation: {base: debian, axes: [os]}
  python: {parent: foundation, axes: [python]}
""")
    plan = plan_of(path)
    assert plan["foundation-bookworm"].tags == ("bookworm", "latest")
    assert plan["foundation-trixie"].tags == ("trixie",)
    assert plan["python-bookworm-3.11"].tags == ("bookworm-3.11", "latest")
    assert plan["python-trixie-3.12"].tags == ("trixie-3.12",)
    assert plan["python-trixie-3.12"].repo == "python"


def test_latest_only_on_the_default_variant(stack) -> None:
    path = stack(AXES + "images:\n  lab: {base: debian, axes: [os, python]}\n")
    with_latest = [n.name for n in plan_of(path).images() if "latest" in n.tags]
    assert with_latest == ["lab-bookworm-3.11"]


def test_latest_can_be_turned_off(stack) -> None:
    path = stack("settings: {latest: false}\n" + AXES + "images:\n  lab: {base: debian, axes: [os]}\n")
    assert all("latest" not in n.tags for n in plan_of(path).images())


def test_tag_templates_with_hash_and_axes(stack) -> None:
    path = stack('settings: {tags: ["{{ variant }}", "py{{ axes.python }}-{{ hash[:7] }}", "{{ os }}.py{{ python }}"]}\n' + AXES
                 + "images:\n  lab: {base: debian, axes: [os, python]}\n")
    node = plan_of(path)["lab-trixie-3.12"]
    assert node.tags == ("trixie-3.12", f"py3.12-{node.hash[:7]}", "trixie.py3.12")


def test_invalid_tag_from_a_template_is_refused_at_plan_time(stack) -> None:
    path = stack('settings: {tags: ["{{ variant }}+{{ image }}"]}\n' + AXES + "images:\n  lab: {base: debian, axes: [os]}\n")
    problems = plan_problems(path)
    assert len(problems) == 2
    message = problems[0].message
    assert message.startswith("image 'lab-bookworm': tag 'bookworm+lab' (from template '{{ variant }}+{{ image }}') is not a valid Docker tag")
    assert "letters, digits" in message
    assert problems[0].location.line == 9


@pytest.mark.parametrize("tag, ok", [
    ("latest", True), ("3.12", True), ("Bookworm_1.0-rc", True), ("_x", True),
    (".hidden", False), ("-dash", False), ("a+b", False), ("a/b", False), ("x" * 128, True), ("x" * 129, False),
])
def test_tag_grammar(tag: str, ok: bool) -> None:
    assert is_tag(tag) is ok


def test_tag_template_error(stack) -> None:
    path = stack('settings: {tags: ["{{ nope }}"]}\n' + AXES + "images:\n  lab: {base: debian, axes: [os]}\n")
    problems = plan_problems(path)
    assert len(problems) == 2  # one per variant
    problem = problems[0]
    assert "tag template '{{ nope }}'" in problem.message and "nope" in problem.message


def test_tag_clash_between_two_images_of_one_repo(stack) -> None:
    path = stack(AXES + """
images:
  lab: {base: debian, axes: [os], repo: jupyter}
  other: {base: debian, axes: [os], repo: jupyter}
""")
    problems = plan_problems(path)
    messages = [p.message for p in problems]
    assert "images 'lab-bookworm' and 'other-bookworm' would both be pushed as jupyter:bookworm" in messages
    assert "images 'lab-bookworm' and 'other-bookworm' would both be pushed as jupyter:latest" in messages
    assert "images 'lab-trixie' and 'other-trixie' would both be pushed as jupyter:trixie" in messages
    assert "another 'repo'" in problems[0].hint


def test_same_tag_in_different_repos_is_fine(stack) -> None:
    path = stack(AXES + """
images:
  lab: {base: debian, axes: [os], repo: jupyter-lab}
  other: {base: debian, axes: [os]}
""")
    plan = plan_of(path)
    assert plan["lab-trixie"].repo == "jupyter-lab" and plan["other-trixie"].tags == ("trixie",)


def test_repository_names() -> None:
    from builder.specification.models import Settings

    settings = Settings.model_validate({"registry": {"host": "registry.example.com:5000", "namespace": "team/sub"}})
    assert str(repository(settings, "lab")) == "registry.example.com:5000/team/sub/lab"
    assert str(repository(Settings(), "lab")) == "docker.io/library/lab"  # the name Docker Hub's API knows it by
    team = Settings.model_validate({"registry": {"namespace": "Team"}})
    with pytest.raises(ValueError, match=r"'docker\.io/Team/lab' is not a valid repository name: .*lowercase"):
        repository(team, "lab")


def test_a_registry_docker_would_read_as_a_namespace_is_refused(stack) -> None:
    path = stack("settings: {registry: {host: myregistry, namespace: team}}\n" + AXES + "images:\n  lab: {base: debian, axes: [os]}\n")
    problem = plan_problems(path)[0]
    assert "'myregistry/team/lab' is not a valid repository name: the registry 'myregistry' has no '.' or port" in problem.message


def test_a_pulled_base_is_checked_at_plan_time(stack) -> None:
    path = stack(AXES.replace('"debian:{{ os }}"', '"debian:{{ os }}+x"') + "images:\n  lab: {base: debian, axes: [os]}\n")
    problem = plan_problems(path)[0]
    assert problem.message.startswith("base 'debian': 'debian:bookworm+x' is not a valid image reference: the tag 'bookworm+x'")
    line = problem.location.file.read_text().splitlines()[problem.location.line - 1]
    assert line[problem.location.column - 1:].startswith('"debian:{{ os }}+x"')


def test_bad_namespace_is_refused_at_plan_time(stack) -> None:
    path = stack("settings: {registry: {namespace: My_Team}}\n" + AXES + "images:\n  lab: {base: debian, axes: [os]}\n")
    problem = plan_problems(path)[0]
    assert "'docker.io/My_Team/lab' is not a valid repository name" in problem.message
