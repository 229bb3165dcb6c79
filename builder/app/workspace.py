"""The composition root: one place that reads the outside world and wires the stages.

A command builds one `Workspace` from its options. The Workspace takes a
snapshot of the environment once, resolves every setting with the same
precedence (command line > `STACKS_*` environment > `stacks.yaml` >
default), and builds what the stages need: the plan, the Docker engine, the
build options, the registry keychain, the check options. Stage modules get
these as arguments, so none of them reads `os.environ`, imports click, or
opens its own engine connection. This is the only module that reads
`STACKS_*` variables.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from builder.adapters.credentials import (PASSWORD_ENV, USER_ENV, DockerConfigCredentials, Keychain, StaticCredentials,
                                          default_keychain)
from builder.adapters.docker import connect, detect
from builder.adapters.engine import Engine
from builder.adapters.engine_address import EngineAddress
from builder.app import environment
from builder.building.images import BuildOptions
from builder.cache.records import RecordStore
from builder.cache.registry_cache import RegistryCache, open_cache
from builder.building.site import Site
from builder.check.options import CheckOptions
from builder.check.run import TestStage
from builder.check.smoke import detect_hardware
from builder.errors import Problem, SpecError
from builder.inventory.store import ManifestStore
from builder.adapters.emulation import SLOWDOWN, EmulatedContainers, Emulation
from builder.plan.plan import Node, Plan, load_plan, load_plans
from builder.reference import is_platform, platform_slug
from builder.plan.render import Mode
from builder.publish.push import RetryPolicy

Say = Callable[[str], None]

# Every STACKS_* variable stacks reads, with what it sets (docs/reference.md lists them; a unit test keeps both whole).
ENVIRONMENT = {
    "STACKS_BUILDER": "force the build path: buildkit or classic",
    "STACKS_DOCKER_CLI": "docker CLI to try first for BuildKit builds",
    "STACKS_CA_CERTS": "extra CA certificates (PEM) for builds, separated by ':'",
    "STACKS_PIP_INDEX_URL": "pip mirror for builds",
    "STACKS_NPM_REGISTRY": "npm mirror for builds",
    "STACKS_APT_MIRROR": "Debian mirror for bootstrapped bases",
    "STACKS_HARDWARE": "hardware the checks may use (gpu), instead of detecting it",
    "STACKS_CHROMIUM": "the Chromium binary of the browser checks",
    USER_ENV: "registry user (with STACKS_REGISTRY_PASSWORD); else the Docker config",
    PASSWORD_ENV: "registry password or token",
    "STACKS_PUSH_ATTEMPTS": "tries per registry operation (default 4)",
    "STACKS_PUSH_BACKOFF": "seconds before the first retry, doubled each time (default 2)",
    "STACKS_REGISTRY": "registry and namespace to publish to (as --registry)",
    "STACKS_CACHE": "registry cache of images and test records (as --cache)",
    "STACKS_CACHE_READONLY": "read the registry cache, never write it (as --cache-read-only)",
    "STACKS_ONLY_VERIFIED": "as --only-verified",
    "STACKS_CACHE_KEEP": "builds kept per image name by `stacks cache prune` (as --keep)",
    "STACKS_DEBUG": "show tracebacks of the tool itself",
    "STACKS_PLATFORM": "platforms to build, test and push, space or comma separated (as --platform)",
}


@dataclass
class Workspace:
    """One command's view of the world: the spec file, the out folder and a snapshot of the environment."""

    spec_file: Path = Path("stacks.yaml")
    out: Path = Path("build")
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: where the command's remarks go: stderr, so that stdout carries only the result (`--json`)
    say: Say = field(default=lambda line: _to_stderr(line))

    # --- where state lives ------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        """The user's cache (XDG): engine probe answers, per-hash locks, test records, build receipts."""
        return environment.cache_dir(self.env)

    # --- the plan ---------------------------------------------------------------

    def plan(self, mode: Mode = "buildkit", platform: str | None = None) -> Plan:
        """The plan as rendered for `mode` (for `platform`, default linux/amd64, as the engine's own), its warnings
        said; commands that build use `build_plan` (the engine's mode and platform)."""
        result = load_plan(self.spec_file, mode, *((platform,) if platform else ()))
        for problem in result.warnings:
            self.say(str(problem))
        return result

    @cached_property
    def build_plan(self) -> Plan:
        """The plan of the engine's own platform, in its render mode."""
        return self.plan(self.engine.mode, self.native_platform)

    @cached_property
    def native_platform(self) -> str:
        """The engine's own platform: the default of --platform, and the one whose images keep the plain tags."""
        return self.engine.platform()

    def platform_plans(self, platforms: tuple[str, ...]) -> list[Plan]:
        """One plan per platform asked for (`--platform`/STACKS_PLATFORM; none: the engine's own), in the
        engine's mode; says its warnings and the images each platform leaves out."""
        wanted = parse_platforms(platforms)
        plans = load_plans(self.spec_file, self.engine.mode, wanted, self.native_platform)
        for problem in plans[0].warnings:
            self.say(str(problem))
        for plan in plans:
            if plan.left_out:
                self.say(f"{plan.platform}: leaving out {len(plan.left_out)} images not built for it: "
                         + ", ".join(f"{name} ({why})" for name, _, why in plan.left_out))
        return plans

    def emulation_problem(self, plan: Plan) -> str | None:
        """Why this host cannot build or run the plan's platform (QEMU not set up), or None."""
        return Emulation().problem(plan.platform, plan.native)

    def platform_out(self, plan: Plan) -> Path:
        """Where a platform's logs, contexts and reports go: the out folder for the engine's own platform,
        a folder per other platform inside it (build/linux-arm64), so two platforms never mix their files."""
        return self.out if not plan.foreign else self.out / platform_slug(plan.platform)

    def select(self, plan: Plan, images: list[str], only_verified: bool) -> list[Node]:
        """The selection with its ancestors, saying which images `--only-verified` leaves out."""
        nodes = plan.select(images, only_verified)
        if only_verified:
            left_out = [n for n in plan.select(images) if not n.verified and n.kind == "image"]
            if left_out:
                self.say(f"--only-verified: leaving out {len(left_out)} unverified images: "
                         + ", ".join(n.name for n in left_out))
        return nodes

    # --- adapters ---------------------------------------------------------------

    @cached_property
    def engine_address(self) -> EngineAddress:
        """The one engine of this command, found as the docker CLI finds it (`builder.app.environment`)."""
        return environment.engine_address(self.env)

    @cached_property
    def child_env(self) -> dict[str, str]:
        """The whole environment of the tool's child processes (docker CLI, Chromium): what they need, with
        the engine's address spelled out (`environment.CHILD_NAMES`), never the whole process environment."""
        return environment.child_environment(self.env, self.engine_address)

    @cached_property
    def engine(self) -> Engine:
        return detect(connect(self.engine_address), self.child_env, forced=self.env.get("STACKS_BUILDER", ""),
                      clis=(self.env.get("STACKS_DOCKER_CLI"),), probe_cache=self.cache_dir / "engine-probe.json")

    @cached_property
    def cache_keychain(self) -> Keychain:
        """For the cache: `docker login HOST` first (in CI, the job's token for GHCR), then the explicit
        credentials, which usually belong to the release registry."""
        return Keychain((DockerConfigCredentials(), StaticCredentials(self.env.get(USER_ENV), self.env.get(PASSWORD_ENV))))

    @cached_property
    def keychain(self) -> Keychain:
        return default_keychain(self.env.get(USER_ENV), self.env.get(PASSWORD_ENV))

    def registry_cache(self, plan: Plan, choice: tuple[str | None, bool] = (None, False)) -> RegistryCache | None:
        """The registry cache of this run: --cache/STACKS_CACHE (`choice`: location, read-only), else
        settings.cache; 'none' turns it off. Unreachable or unreadable: a warning and no cache."""
        location, read_only = choice
        location = location or plan.spec.model.settings.cache
        if location is None or location.lower() == "none":
            return None
        return open_cache(location, self.engine, not read_only, self.say, self.cache_keychain)

    @cached_property
    def records(self) -> RecordStore:
        """Test records of this machine (docs/cache.md)."""
        return RecordStore(self.cache_dir / "tests")

    @cached_property
    def manifests(self) -> ManifestStore:
        """Package manifests of images on this machine, by image id (docs/manifests.md)."""
        return ManifestStore(self.cache_dir / "manifests")

    # --- options of the stages --------------------------------------------------

    def site(self, plan: Plan, ca_certs: tuple[Path, ...] = ()) -> Site:
        """CA certificates (all of CLI, environment and stacks.yaml) and mirrors (first that is set)."""
        settings = plan.spec.model.settings.build
        certs = list(ca_certs)
        certs += [Path(p) for p in self.env.get("STACKS_CA_CERTS", "").split(os.pathsep) if p]
        certs += [plan.spec.path.parent / p for p in settings.ca_certificates]
        return Site(
            ca_certificates=tuple(dict.fromkeys(certs)),
            pip_index_url=self.env.get("STACKS_PIP_INDEX_URL") or settings.pip_index_url,
            npm_registry=self.env.get("STACKS_NPM_REGISTRY") or settings.npm_registry,
            apt_mirror=self.env.get("STACKS_APT_MIRROR") or settings.apt_mirror,
        )

    def build_options(self, plan: Plan, jobs: int | None, ca_certs: tuple[Path, ...] = ()) -> BuildOptions:
        return BuildOptions(
            out_dir=self.out,
            jobs=jobs or plan.spec.model.settings.build.jobs or max(1, os.cpu_count() or 1),
            site=self.site(plan, ca_certs),
            lock_dir=self.cache_dir / "locks",
        )

    def test_stage(self, plan: Plan, jobs: int | None, force: bool, cache: tuple[str | None, bool],
                   allow_not_run: tuple[str, ...]) -> TestStage:
        """`stacks test`, wired: the engine, the check options, the records and the registry cache of this run;
        another platform's images run under QEMU, with every timeout `SLOWDOWN` times longer."""
        stage = TestStage(self.engine, replace(self.check_options(self.engine), out_dir=self.platform_out(plan)),
                          self.records, self.registry_cache(plan, cache), jobs or max(1, os.cpu_count() or 1), force,
                          frozenset(allow_not_run), manifests=self.manifests)
        if not plan.foreign:
            return stage
        return replace(stage, containers=EmulatedContainers(self.engine.containers, plan.platform, SLOWDOWN),
                       emulated=True, setuid_works=Emulation().setuid_works(plan.platform))

    def check_options(self, engine: Engine) -> CheckOptions:
        """The hardware checks may use (STACKS_HARDWARE, else detected on the engine) and the browser."""
        hardware = detect_hardware(engine.containers, self.env.get("STACKS_HARDWARE"))
        return CheckOptions(out_dir=self.out, hardware=hardware, chromium=self.env.get("STACKS_CHROMIUM") or None,
                            child_env=self.child_env)

    def retry_policy(self) -> RetryPolicy:
        """From STACKS_PUSH_ATTEMPTS and STACKS_PUSH_BACKOFF."""
        try:
            return RetryPolicy(max(1, int(self.env.get("STACKS_PUSH_ATTEMPTS", "4"))),
                               max(0.0, float(self.env.get("STACKS_PUSH_BACKOFF", "2"))))
        except ValueError:
            raise SpecError([Problem("STACKS_PUSH_ATTEMPTS must be a whole number and STACKS_PUSH_BACKOFF "
                                     "a number of seconds")]) from None


def parse_platforms(values: tuple[str, ...]) -> list[str]:
    """--platform values (repeatable) or STACKS_PLATFORM (space or comma separated) -> platforms, checked."""
    found = [p for value in values for p in value.replace(",", " ").split()]
    bad = [p for p in found if not is_platform(p)]
    if bad:
        raise SpecError([Problem(f"--platform {p}: not a platform; write OS/ARCH such as linux/amd64 or linux/arm64")
                         for p in bad])
    return list(dict.fromkeys(found))


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)
