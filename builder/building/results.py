"""What building one node came to: the row of the build report.

Kept apart from `images` (which drives the engine) so the report, and the
no-op answer from a build receipt, can use it without importing the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.building.scheduler import BuildStatus


@dataclass
class ImageResult:
    name: str
    kind: str
    parent: str | None
    hash: str
    ref: str
    status: BuildStatus = "pending"
    seconds: float = 0.0
    size: int | None = None
    size_budget: int | None = None
    reasons: list[str] = field(default_factory=list)
    step: str | None = None
    error: str | None = None
    log: str | None = None
    log_tail: list[str] = field(default_factory=list)
    platform: str = ""  # the platform the image is built for (linux/arm64)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)
