"""Loading the fragment library: metadata schema, name, template syntax and variables."""
from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import SpecError
from builder.specification.fragments import load_library
from builder.specification.load import load_spec

from .helpers import write_fragment

SPEC = """
bases:
  debian: {pull: "debian:12"}
images:
  lab: {base: debian, fragments: [os]}
"""


def library_problems(tmp_path: Path, **fragments) -> list:
    root = tmp_path / "fragments"
    for name, parts in fragments.items():
        write_fragment(root, name, **parts)
    _, problems = load_library([root])
    return problems


def test_good_fragments_load(tmp_path: Path) -> None:
    root = tmp_path / "fragments"
    write_fragment(root, "py", {"provides": ["python={{ version }}"], "params": {"version": {"type": "string"}}},
                   "RUN echo {{ version }}\nCOPY {{ here }}/run.sh /run.sh\n",
                   files={"run.sh": "#!/bin/sh\n", "conf.txt.j2": "v={{ version }}\n"}, executable=("run.sh",))
    library, problems = load_library([root])
    assert problems == []
    fragment = library["py"]
    assert fragment.meta.params["version"].required is True
    assert {f.path: f.mode for f in fragment.files} == {"conf.txt": 0o644, "run.sh": 0o755}
    assert [f.path for f in fragment.files if f.template is not None] == ["conf.txt"]
    assert library.providers("python") == ["py"]


def test_folders_starting_with_underscore_or_dot_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "fragments"
    write_fragment(root, "_template", {"nme": "broken"})
    write_fragment(root, ".hidden", "::: not yaml")
    write_fragment(root, "ok")
    library, problems = load_library([root])
    assert problems == [] and list(library.fragments) == ["ok"]


def test_first_directory_wins_on_a_name_clash(tmp_path: Path) -> None:
    write_fragment(tmp_path / "a", "x", {"version": "1"})
    write_fragment(tmp_path / "b", "x", {"version": "2"})
    library, problems = load_library([tmp_path / "a", tmp_path / "b"])
    assert problems == [] and library["x"].meta.version == "1"


def test_schema_error_names_fragment_yaml_and_line(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, bad={"meta": """
        name: bad
        description: A bad one.
        provide: [x]
        weight: heavy
        """})
    assert len(problems) == 2
    unknown, weight = sorted(problems, key=lambda p: p.location.line)
    assert unknown.location.file == tmp_path / "fragments" / "bad" / "fragment.yaml"
    assert unknown.location.line == 3 and unknown.message.startswith("unknown key 'provide'")
    assert unknown.hint == "did you mean 'provides'?"
    assert weight.location.line == 4 and "weight" in weight.message and "integer" in weight.message


def test_missing_description(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, nodesc={"meta": "name: nodesc\n"})
    assert [p.message for p in problems] == ["missing required key 'description'"]
    assert problems[0].location.file.name == "fragment.yaml"


def test_yaml_syntax_error_in_fragment_yaml(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, broken={"meta": "name: broken\ndescription: [oops\n"})
    assert len(problems) == 1
    assert "YAML syntax error" in problems[0].message
    assert problems[0].location.file.name == "fragment.yaml" and problems[0].location.line is not None


def test_name_must_match_folder(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, jupyter={"meta": "description: x\nname: jupyterlab\n"})
    assert len(problems) == 1
    problem = problems[0]
    assert problem.message == "fragment name 'jupyterlab' differs from its folder 'jupyter'"
    assert problem.location.file.name == "fragment.yaml" and problem.location.line == 2
    assert problem.hint == "write 'name: jupyter'"


def test_template_syntax_error_names_dockerfile_and_line(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, t={"body": "RUN echo one\nRUN echo two\n{% endif %}\nRUN echo three\n"})
    assert len(problems) == 1
    problem = problems[0]
    assert problem.message.startswith("template syntax error:")
    assert problem.location.file == tmp_path / "fragments" / "t" / "Dockerfile.j2"
    assert problem.location.line == 3
    assert "endif" in problem.message


def test_template_syntax_error_unclosed_expression(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, t={"body": "RUN a\nRUN b\nRUN echo {{ version \n"})
    assert len(problems) == 1
    assert problems[0].location.file.name == "Dockerfile.j2" and problems[0].location.line == 3


def test_undefined_template_variable_with_did_you_mean(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, py={
        "meta": {"params": {"version": {"type": "string"}}},
        "body": "RUN echo start\n\nRUN echo {{ verison }}\nRUN echo {{ verison }} again\n",
    })
    assert len(problems) == 1
    problem = problems[0]
    assert problem.message == "template variable 'verison' is not defined"
    assert problem.location.file == tmp_path / "fragments" / "py" / "Dockerfile.j2"
    assert problem.location.line == 3
    assert problem.hint == "did you mean 'version'?"


def test_undefined_variable_without_close_param_asks_to_declare_it(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, t={"body": "RUN echo\nRUN echo {{ zzz }}\n"})
    assert len(problems) == 1
    assert problems[0].location.line == 2
    assert problems[0].hint == "declare it under 'params' in fragment.yaml"


def test_builtins_and_locals_are_not_undefined(tmp_path: Path) -> None:
    body = (
        "COPY {{ here }}/x /x\n"
        "RUN {{ cache.apt }} echo {{ image.name }}\n"
        "{% for p in pkgs %}RUN echo {{ p }}\n{% endfor %}\n"
        "{% set y = 1 %}RUN echo {{ y }}\n"
    )
    problems = library_problems(tmp_path, t={"meta": {"params": {"pkgs": {"type": "list", "default": []}}}, "body": body})
    assert problems == []


def test_undefined_variable_in_context_file_template(tmp_path: Path) -> None:
    problems = library_problems(tmp_path, t={"files": {"etc/conf.j2": "a\nb={{ bogus }}\n"}})
    assert len(problems) == 1
    assert problems[0].location.file == tmp_path / "fragments" / "t" / "etc/conf.j2"
    assert problems[0].location.line == 2


def test_missing_dockerfile(tmp_path: Path) -> None:
    folder = write_fragment(tmp_path / "fragments", "nobody")
    (folder / "Dockerfile.j2").unlink()
    library, problems = load_library([tmp_path / "fragments"])
    assert [p.message for p in problems] == ["fragment has no Dockerfile.j2"]
    assert "nobody" not in library


def test_fragment_errors_surface_through_load_spec_together(stack) -> None:
    path = stack(SPEC, {
        "a": {"meta": "name: a\ndescription: x\nrequire: []\n"},
        "b": {"body": "RUN {{ nope }}\n"},
    })
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    where = sorted((p.location.file.name, p.location.line) for p in excinfo.value.problems)
    assert where == [("Dockerfile.j2", 1), ("fragment.yaml", 3)]


def test_only_templates_that_read_image_are_rendered_per_image(tmp_path: Path) -> None:
    write_fragment(tmp_path, "mentions", body="# the word image in a comment does not make a render per image\nRUN true\n")
    write_fragment(tmp_path, "reads", body="LABEL name={{ image.name }}\n")
    write_fragment(tmp_path, "reads-in-file", files={"motd.j2": "built as {{ image.variant }}\n"})
    library, problems = load_library([tmp_path])
    assert problems == []
    assert not library["mentions"].reads_image
    assert library["reads"].reads_image and library["reads-in-file"].reads_image
