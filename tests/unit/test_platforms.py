"""A platform is part of an image's identity: hashes, local tags, cache tags and plans differ per platform."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from builder.adapters.containers import ExecResult, RunSpec
from builder.adapters.emulation import EmulatedContainers, Emulation
from builder.app.workspace import parse_platforms
from builder.cache.identity import own_tag
from builder.check.emulation import emulation_limits
from builder.check.result import CheckResult
from builder.errors import SpecError
from builder.plan.hashing import explain_change
from builder.plan.plan import load_plan, load_plans
from builder.reference import debian_architecture, is_platform, platform_of_machine, platform_slug

MINI = Path(__file__).resolve().parent.parent / "fixtures" / "mini" / "stacks.yaml"


def test_platform_names() -> None:
    assert platform_slug("linux/arm64") == "linux-arm64" and platform_slug("linux/arm/v7") == "linux-arm-v7"
    assert debian_architecture("linux/arm64") == "arm64" and debian_architecture("linux/amd64") == "amd64"
    assert debian_architecture("linux/arm/v7") == "armhf" and debian_architecture("linux/ppc64le") == "ppc64el"
    assert platform_of_machine("x86_64") == "linux/amd64" and platform_of_machine("aarch64") == "linux/arm64"
    assert is_platform("linux/arm64") and is_platform("linux/arm/v7")
    assert not is_platform("arm64") and not is_platform("Linux/ARM64") and not is_platform("linux/arm64/")


def test_platforms_from_the_option_or_the_environment() -> None:
    assert parse_platforms(("linux/amd64", "linux/arm64")) == ["linux/amd64", "linux/arm64"]
    assert parse_platforms(("linux/amd64,linux/arm64 linux/amd64",)) == ["linux/amd64", "linux/arm64"]
    assert parse_platforms(()) == []
    with pytest.raises(SpecError, match="arm64: not a platform"):
        parse_platforms(("arm64",))


def test_every_hash_covers_the_platform() -> None:
    amd, arm = load_plans(MINI, "buildkit", ["linux/amd64", "linux/arm64"], native="linux/amd64")
    assert (amd.platform, arm.platform) == ("linux/amd64", "linux/arm64") and arm.foreign and not amd.foreign
    assert [n.name for n in amd] == [n.name for n in arm]
    for one, other in zip(amd, arm):
        assert one.hash != other.hash, one.name
        assert (one.platform, other.platform) == ("linux/amd64", "linux/arm64")
        assert one.inputs["platform"] == "linux/amd64" and other.inputs["platform"] == "linux/arm64"
    assert explain_change(amd["foundation-bookworm"].inputs, arm["foundation-bookworm"].inputs)[0] == "platform changed"
    assert load_plan(MINI, platform="linux/arm64")["python-bookworm"].hash == arm["python-bookworm"].hash \
        or load_plan(MINI, platform="linux/arm64").native == "linux/arm64"  # native or not: the hash is the same


def test_the_hash_does_not_depend_on_which_platform_is_native() -> None:
    here = load_plan(MINI, platform="linux/arm64", native="linux/amd64")
    there = load_plan(MINI, platform="linux/arm64", native="linux/arm64")
    assert [n.hash for n in here] == [n.hash for n in there]


def test_local_tags_native_plain_foreign_by_platform() -> None:
    amd, arm = load_plans(MINI, "buildkit", ["linux/amd64", "linux/arm64"], native="linux/amd64")
    lab, lab_arm = amd["python-bookworm"], arm["python-bookworm"]
    assert lab.local_ref == f"stacks/python-bookworm:{lab.short_hash}" and lab.latest_ref == "stacks/python-bookworm:latest"
    assert lab_arm.local_ref == f"stacks/python-bookworm:linux-arm64-{lab_arm.short_hash}"
    assert lab_arm.latest_ref == "stacks/python-bookworm:linux-arm64"
    assert arm["python-bookworm"].rendered.dockerfile.count(arm["foundation-bookworm"].local_ref) == 1  # built FROM its own platform's parent
    assert amd["ubuntu"].local_ref == "ubuntu:24.04"  # a pulled base keeps its name on the engine's platform...
    assert arm["ubuntu"].local_ref == f"stacks/ubuntu:linux-arm64-{arm['ubuntu'].short_hash}"  # ...not on another
    assert own_tag(lab_arm.local_ref, "python-bookworm", lab_arm.hash) and own_tag(lab.local_ref, "python-bookworm", lab.hash)
    assert not own_tag(lab_arm.local_ref, "python-bookworm", lab.hash)
    assert lab.summary()["platform"] == "linux/amd64"


def _narrowed(tmp_path: Path) -> Path:
    (tmp_path / "stacks.yaml").write_text(textwrap.dedent("""\
        version: 1
        settings: {fragments: [fragments]}
        bases:
          debian: {bootstrap: {suite: bookworm}, provides: ["os=debian"], platforms: [linux/amd64, linux/arm64]}
          amdonly: {bootstrap: {suite: trixie}, provides: ["os=debian"], platforms: [linux/amd64]}
        images:
          root: {base: debian, fragments: [plain]}
          gpu: {parent: root, fragments: [x86]}
          above-gpu: {parent: gpu, fragments: [plain2]}
          other: {base: amdonly, fragments: [plain3]}
        """))
    for name, extra in (("plain", ""), ("plain2", ""), ("plain3", ""), ("x86", "platforms: [linux/amd64]\n")):
        folder = tmp_path / "fragments" / name
        folder.mkdir(parents=True)
        (folder / "fragment.yaml").write_text(f"name: {name}\ndescription: test {name}.\n{extra}")
        (folder / "Dockerfile.j2").write_text(f"RUN echo {name}\n")
    return tmp_path / "stacks.yaml"


def test_images_not_built_for_a_platform_are_left_out_of_its_plan_and_said(tmp_path: Path) -> None:
    amd, arm = load_plans(_narrowed(tmp_path), "buildkit", ["linux/amd64", "linux/arm64"], native="linux/amd64")
    assert {n.name for n in amd} == {"debian", "amdonly", "root", "gpu", "above-gpu", "other"} and amd.left_out == ()
    assert {n.name for n in arm} == {"debian", "root"}
    assert {name: why for name, _, why in arm.left_out} == {
        "gpu": "fragment 'x86' is not built for linux/arm64",
        "above-gpu": "its parent 'gpu' is not built for linux/arm64",
        "other": "base 'amdonly' is not built for linux/arm64",
    }


class _Runner:
    def __init__(self) -> None:
        self.specs: list[RunSpec] = []
        self.waits: list[float] = []
        self.execs: list[float | None] = []

    def image(self, ref):
        raise AssertionError

    def runtimes(self):
        return frozenset()

    def run(self, ref, spec):
        from contextlib import contextmanager

        runner = self

        class _Container:
            name = "c"

            def exec(self, command, timeout=None, *, user=None, split=False, detach=False):
                runner.execs.append(timeout)
                return ExecResult(0, b"", b"")

        @contextmanager
        def started():
            self.specs.append(spec)
            yield _Container()

        return started()

    def clock(self):
        return 0.0

    def wait_until(self, condition, timeout, interval, since=None):
        self.waits.append(timeout)
        return None


def test_emulated_containers_start_for_the_platform_and_scale_every_timeout() -> None:
    inner = _Runner()
    runner = EmulatedContainers(inner, "linux/arm64", 6.0)
    with runner.run("img", RunSpec("lab", "idle")) as container:
        container.exec(["true"], 10)
        container.exec(["true"])
    runner.wait_until(lambda: None, 30, 0.5)
    assert inner.specs[0].platform == "linux/arm64"
    assert inner.execs == [60.0, None] and inner.waits == [180.0]


def test_binfmt_decides_whether_a_foreign_platform_can_run(tmp_path: Path) -> None:
    emulation = Emulation(tmp_path)
    assert emulation.problem("linux/amd64", "linux/amd64") is None
    assert "binfmt_misc is not mounted" in (emulation.problem("linux/arm64", "linux/amd64") or "")
    (tmp_path / "status").write_text("enabled\n")
    assert "qemu-user-static" in (emulation.problem("linux/arm64", "linux/amd64") or "")
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n")
    assert "disabled" in (emulation.problem("linux/arm64", "linux/amd64") or "")
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n")
    assert emulation.problem("linux/arm64", "linux/amd64") is None
    assert not emulation.setuid_works("linux/arm64")
    (tmp_path / "qemu-aarch64").write_text("enabled\nflags: PFC\n")
    assert emulation.setuid_works("linux/arm64")


def test_sudo_checks_are_not_run_under_emulation_without_setuid() -> None:
    def results():
        return [CheckResult("lab", "sudo is closed by default", "nb-user", "run", "passed"),
                CheckResult("lab", "GRANT_SUDO=yes gives the user passwordless sudo", "start-scripts", "start", "failed"),
                CheckResult("lab", "sudo is installed (GRANT_SUDO)", "debian-os", "package", "passed"),
                CheckResult("lab", "python runs", "python", "run", "passed")]

    kept, unrunnable = emulation_limits(results(), setuid_works=False)
    assert [r.status for r in kept] == ["not run", "not run", "passed", "passed"]
    assert "QEMU" in kept[0].got and unrunnable == {("nb-user", "sudo is closed by default"),
                                                    ("start-scripts", "GRANT_SUDO=yes gives the user passwordless sudo")}
    kept, unrunnable = emulation_limits(results(), setuid_works=True)
    assert [r.status for r in kept] == ["passed", "failed", "passed", "passed"] and not unrunnable


def test_an_image_of_the_wrong_architecture_fails_and_loses_its_tag() -> None:
    from builder.adapters.engine import BuildFailed
    from builder.building.images import check_platform

    from .fakes import FakeEngine

    arm = load_plans(MINI, "buildkit", ["linux/arm64"], native="linux/amd64")[0]["foundation-bookworm"]
    engine = FakeEngine()
    engine.add(arm.local_ref, arm.hash)  # what an engine ignoring --platform would leave: its own architecture
    with pytest.raises(BuildFailed, match="built for linux/amd64, not linux/arm64"):
        check_platform(engine, arm)
    assert engine.image(arm.local_ref) is None
    engine.add(arm.local_ref, arm.hash).architecture = "arm64"
    check_platform(engine, arm)


def test_explain_compares_with_the_last_build_of_the_same_platform() -> None:
    import json

    from builder.building.images import why_build

    from .fakes import FakeEngine

    amd, arm = load_plans(MINI, "buildkit", ["linux/amd64", "linux/arm64"], native="linux/amd64")
    engine = FakeEngine()
    built = engine.add(amd["foundation-bookworm"].local_ref, amd["foundation-bookworm"].hash)
    built.labels.update({"io.stacks.name": "foundation-bookworm",
                         "io.stacks.inputs": json.dumps(amd["foundation-bookworm"].inputs)})
    assert why_build(engine, arm["foundation-bookworm"]) == (False, ["never built for linux/arm64"])
    assert why_build(engine, amd["foundation-bookworm"])[0]
