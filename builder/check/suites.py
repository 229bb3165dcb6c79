"""The registry of check suites: which images each suite applies to, and how it runs.

A suite is a predicate over the image under test (its capabilities, its
default command, its kind) and a callable that runs against a container
runner and returns results. `stacks test` runs, in registry order, every
suite whose predicate holds; a new behaviour check is a new entry here, not
another branch in the orchestration.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from builder.adapters.containers import ContainerRunner
from builder.check import browser, idle, server, start
from builder.check.options import CheckOptions
from builder.check.result import CheckResult
from builder.check.target import Target, provider

Applies = Callable[[Target], bool]
Runs = Callable[[Target, ContainerRunner, CheckOptions], list[CheckResult]]


@dataclass(frozen=True)
class Suite:
    name: str
    applies: Applies
    run: Runs
    #: what the suite does to this image, in a few words, for progress lines (`stacks test`)
    describe: Callable[[Target], str] | None = None

    def what(self, target: Target) -> str:
        return self.describe(target) if self.describe is not None else f"{self.name} checks"


def _declared(target: Target) -> str:
    kernels = target.kernels
    return "declared checks" + (f", kernel{'s' if len(kernels) > 1 else ''} {' '.join(kernels)}" if kernels else "")


def provides(capability: str) -> Applies:
    """The predicate 'a fragment of the image's chain provides `capability`'."""
    return lambda target: target.provides(capability)


def every_image(target: Target) -> bool:
    return True


def is_single_user_command(target: Target) -> bool:
    """The image's default command is the Hub's single-user server (it cannot start without a Hub)."""
    return target.provides("jupyterhub-singleuser") and "singleuser" in target.facts.command


def standalone_server(target: Target) -> bool:
    return target.provides("jupyter-server") and not is_single_user_command(target)


def server_and_browser(target: Target, runner: ContainerRunner, options: CheckOptions) -> list[CheckResult]:
    """The standalone server's checks; with JupyterLab, the browser checks run while its token server is up."""
    lab = provider(target.node, "jupyterlab")
    if lab is None:
        return server.standalone_checks(target, runner, options)
    return server.standalone_checks(target, runner, options, while_up=lambda up: browser.launcher_checks(
        up, target.node.name, lab, options.out_dir, options.chromium, options.child_env))


SUITES: tuple[Suite, ...] = (
    Suite("declared", every_image, idle.idle_checks, _declared),
    Suite("start", provides("start-scripts"), start.start_checks, lambda _: "start scripts (user, umask, hooks)"),
    Suite("hub", provides("jupyterhub-singleuser"), server.hub_checks, lambda _: "single-user server under a Hub"),
    Suite("server", standalone_server, server_and_browser,
          lambda t: "server and browser" if provider(t.node, "jupyterlab") is not None else "server"),
)


def suites_for(target: Target, registry: Sequence[Suite] = SUITES) -> list[Suite]:
    """The suites that apply to `target`, in registry order."""
    return [suite for suite in registry if suite.applies(target)]
