"""The image under test as the check suites see it: its plan node, its built config, its declared kernels."""
from __future__ import annotations

from dataclasses import dataclass, field

from builder.adapters.containers import ImageFacts
from builder.plan.plan import Node


@dataclass(frozen=True)
class Target:
    node: Node
    facts: ImageFacts  # read from the built image: Cmd, Env, User, Healthcheck, labels
    kernels: list[str] = field(default_factory=list)  # names of the kernels its fragments declare

    def provides(self, capability: str) -> bool:
        return provider(self.node, capability) is not None


def provider(node: Node, capability: str) -> str | None:
    """The fragment of the image's chain that provides `capability` (the last one wins)."""
    found = None
    for applied in node.chain:
        if any(p.name == capability for p in applied.provides):
            found = applied.name
    return found
