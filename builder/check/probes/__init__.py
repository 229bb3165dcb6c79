"""Scripts that run inside containers of the images under test."""
from pathlib import Path

KERNEL_PROBE = (Path(__file__).parent / "kernel_probe.py").read_text(encoding="utf-8")
HUB_STUB = (Path(__file__).parent / "hub_stub.py").read_text(encoding="utf-8")
