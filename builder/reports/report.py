"""Build reports people and CI can read: JSON for machines, Markdown for job summaries."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.building.results import ImageResult
from builder.files import atomic_write
from builder.plan.sizes import human_size

_ICONS = {"built": "built", "cached": "cached", "failed": "**FAILED**", "skipped": "skipped", "cancelled": "cancelled"}


def write_reports(results: list[ImageResult], out_dir: Path, header: dict[str, Any]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    tests = image_tests(out_dir, {r.name: r.hash for r in results})
    document = {**header, "images": [{**r.to_json(), "tests": tests.get(r.name)} for r in results],
                "summary": summary(results), "test_report": TEST_REPORT}
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    atomic_write(json_path, json.dumps(document, indent=2) + "\n")
    atomic_write(md_path, markdown(results, header) + tests_markdown(tests))
    return json_path, md_path


def summary(results: list[ImageResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


def markdown(results: list[ImageResult], header: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary(results).items()))
    platform = f" Platform: {header['platform']}." if header.get("platform") else ""
    lines = [
        "# Build report", "",
        f"{len(results)} images: {counts}. Engine: {header.get('engine', '?')}.{platform} "
        f"Wall time: {header.get('seconds', 0)} s.", "",
        "| image | status | seconds | size | hash | parent | why |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in results:
        why = "; ".join(r.reasons) if r.status in ("built", "cached") else (r.error or "")
        lines.append(
            f"| {r.name} | {_ICONS.get(r.status, r.status)} | {r.seconds:.1f} | {_size_cell(r.size, r.size_budget)} | "
            f"`{r.hash[:12]}` | {r.parent or '-'} | {why.replace('|', '/')} |"
        )
    for r in results:
        if r.status == "failed":
            lines += ["", f"## {r.name} failed", "", f"Step: `{r.step or 'unknown'}`", "", f"Error: {r.error}", ""]
            if r.log_tail:
                lines += [f"Last lines of `{r.log}`:", "", "```", *r.log_tail, "```"]
    return "\n".join(lines) + "\n"


def _size_cell(size: int | None, budget: int | None) -> str:
    """'450.2 MB of 600.0 MB', with the overrun in bold so a reviewer cannot miss it."""
    if budget is None:
        return human_size(size)
    over = size is not None and size > budget
    text = f"{human_size(size)} of {human_size(budget)}"
    return f"**{text}: over budget**" if over else text


TEST_REPORT = "test-report.json"


def write_test_reports(results: list, out_dir: Path, hashes: dict[str, str] | None = None,
                       earlier: dict[str, dict] | None = None, note: str = "") -> tuple[Path, Path, Path]:
    """Smoke-test results as JSON, Markdown and JUnit XML (for CI test tabs); the build report links them.

    The JSON also has, per image, the content hash that was tested and
    whether every check passed: `stacks push` publishes only those images,
    and only while their hash is still the one that was tested. `earlier`:
    summaries of images skipped because a passing test record exists. `note`: how the checks ran (the
    platform, and emulation with its scaled timeouts), said at the top of the Markdown and in the JSON.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = _counts(results)
    images = {**(earlier or {}), **{name: _image_summary(name, digest, results) for name, digest in (hashes or {}).items()}}
    json_path, md_path, junit_path = out_dir / TEST_REPORT, out_dir / "test-report.md", out_dir / "junit.xml"
    previous = _previous_images(json_path)
    document = {"summary": counts, "images": {**previous, **images}, "checks": [r.to_json() for r in results]}
    if note:
        document["note"] = note
    atomic_write(json_path, json.dumps(document, indent=2) + "\n")
    atomic_write(md_path, smoke_markdown(results, images, note))
    atomic_write(junit_path, junit(results))
    _update_build_report(out_dir)
    return json_path, md_path, junit_path


def _counts(results: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


def _image_summary(name: str, digest: str, results: list) -> dict[str, Any]:
    mine = [r for r in results if r.image == name]
    shots = [r.artifact for r in mine if getattr(r, "artifact", None)]
    return {"hash": digest, "passed": not any(r.status == "failed" for r in mine), "checks": _counts(mine),
            "seconds": round(sum(r.seconds for r in mine), 1), "screenshot": shots[0] if shots else None}


def smoke_markdown(results: list, images: dict[str, dict], note: str = "") -> str:
    counts = _counts(results)
    lines = ["# Smoke tests", "", *([note, ""] if note else []),
             ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no checks", "",
             "| image | result | passed | failed | not run | seconds (sum of checks) |", "|---|---|---:|---:|---:|---:|"]
    for name, info in images.items():
        c = info["checks"]
        verdict = ('passed' if info['passed'] else '**FAILED**') + (f" (earlier, {info['cached']}, cached)" if info.get("cached") else "")
        lines.append(f"| {name} | {verdict} | {c.get('passed', 0)} | "
                     f"{c.get('failed', 0)} | {c.get('not run', 0)} | {info['seconds']:.1f} |")
    lines += ["", "| image | check | kind | fragment | status | seconds |", "|---|---|---|---|---|---:|"]
    lines += [f"| {r.image} | {_cell(r.name)} | {r.kind} | {r.fragment} | "
              f"{'**failed**' if r.status == 'failed' else r.status} | {r.seconds:.1f} |" for r in results]
    for r in results:
        if r.status == "failed":
            lines += ["", f"## {r.image}: {r.name} failed", "", f"Expected: {r.expected}", "", "Got:", "", "```", r.got, "```"]
    for name, info in images.items():
        if info.get("screenshot"):
            lines += ["", f"## {name} in a browser", "", f"![JupyterLab of {name}]({info['screenshot']})"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def image_tests(out_dir: Path, hashes: dict[str, str]) -> dict[str, dict]:
    """The last smoke-test summary of each image, only while it is still the same content hash."""
    return {name: info for name, info in _previous_images(out_dir / TEST_REPORT).items()
            if name in hashes and info.get("hash") == hashes[name]}


TESTS_MARKER = "<!-- smoke tests -->"


def tests_markdown(tests: dict[str, dict], manifests: frozenset[str] = frozenset()) -> str:
    """The build report's smoke-test section: per image, the result and a link to the details (and to its
    package manifest and SBOM, for the images in `manifests`)."""
    lines = ["", TESTS_MARKER, "## Smoke tests", ""]
    if not tests:
        return "\n".join(lines + ["No image of this report has been tested yet (`stacks test`).", ""])
    lines += ["| image | tests | passed | failed | not run | screenshot | manifest |", "|---|---|---:|---:|---:|---|---|"]
    for name, info in tests.items():
        c = info.get("checks", {})
        shot = f"[png]({info['screenshot']})" if info.get("screenshot") else "-"
        manifest = f"[packages](manifests/{name}.md), [SBOM](manifests/{name}.cdx.json)" if name in manifests else "-"
        lines.append(f"| {name} | {'passed' if info.get('passed') else '**FAILED**'} | {c.get('passed', 0)} | "
                     f"{c.get('failed', 0)} | {c.get('not run', 0)} | {shot} | {manifest} |")
    return "\n".join(lines + ["", "Details: [test-report.md](test-report.md), JUnit: [junit.xml](junit.xml).", ""])


def _update_build_report(out_dir: Path) -> None:
    """Write the new test results into the build report of the same folder, if there is one."""
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
        text = md_path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return
    tests = image_tests(out_dir, {i["name"]: i["hash"] for i in document.get("images", []) if "hash" in i})
    for image in document.get("images", []):
        image["tests"] = tests.get(image.get("name"))
    document["test_report"] = TEST_REPORT
    atomic_write(json_path, json.dumps(document, indent=2) + "\n")
    manifests = frozenset(name for name in tests if (out_dir / "manifests" / f"{name}.md").exists())
    atomic_write(md_path, text.split("\n" + TESTS_MARKER)[0].rstrip("\n") + "\n" + tests_markdown(tests, manifests))


def junit(results: list) -> str:
    import xml.etree.ElementTree as ET

    suites = ET.Element("testsuites", name="stacks")
    by_image: dict[str, list] = {}
    for result in results:
        by_image.setdefault(result.image, []).append(result)
    for image, items in by_image.items():
        suite = ET.SubElement(
            suites, "testsuite", name=image, tests=str(len(items)),
            failures=str(sum(r.status == "failed" for r in items)),
            skipped=str(sum(r.status == "not run" for r in items)),
            time=f"{sum(r.seconds for r in items):.2f}",
        )
        for r in items:
            case = ET.SubElement(suite, "testcase", classname=f"{image}.{r.fragment}", name=r.name, time=f"{r.seconds:.2f}")
            if r.status == "failed":
                ET.SubElement(case, "failure", message=f"expected {r.expected}").text = f"expected: {r.expected}\ngot: {r.got}"
            elif r.status == "not run":
                ET.SubElement(case, "skipped", message=r.got)
            if getattr(r, "artifact", None):  # the attachment convention of Jenkins and GitLab
                ET.SubElement(case, "system-out").text = f"[[ATTACHMENT|{r.artifact}]]"
    return ET.tostring(suites, encoding="unicode") + "\n"


def _previous_images(path: Path) -> dict[str, dict]:
    """Images tested by earlier runs stay known (testing one image must not forget the others)."""
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("images", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def tested_images(out_dir: Path) -> dict[str, str]:
    """{image name: content hash} of every image whose last smoke test passed."""
    return {name: info["hash"] for name, info in _previous_images(out_dir / TEST_REPORT).items() if info.get("passed")}
