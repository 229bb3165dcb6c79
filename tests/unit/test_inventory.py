"""Package manifests: the reader script, parsing, the CycloneDX SBOM against its schema, diffs, the registry
artifact and the test stage taking each manifest once."""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from builder.cache.records import RecordStore
from builder.check.run import run_tests_by_record
from builder.inventory.attached import NoSbom, attach_sbom, fallback_tag, find_sbom
from builder.inventory.diff import compare, diff, markdown as diff_markdown
from builder.inventory.manifest import Manifest, Package, markdown, parse_lines
from builder.inventory.read import reader_script
from builder.inventory.sbom import from_cyclonedx, purl, to_cyclonedx
from builder.inventory.store import ManifestStore
from tests.unit.fakes import FakeRegistry, sha256

READER_OUTPUT = "\n".join([
    "os\tdebian\t12\tDebian GNU/Linux 12 (bookworm)",
    "deb\tcurl\t7.88.1-10+deb12u5\tamd64",
    "deb\tlibc6\t2.36-9+deb12u4\tamd64",
    "env\t/opt/venv\t3.11.2",
    "pypi\t/opt/venv\tJupyterLab\t4.2.5",
    "pypi\t/opt/venv\tjupyter_server\t2.14.2",
    "pypi\t/usr\tjupyterlab\t3.0.0",  # the same name in another environment is another package
    "conda\t/opt/conda\tnumpy\t1.26.4\thttps://conda.anaconda.org/conda-forge",
    "npm\t@jupyterlab/builder\t4.2.5",
    "npm\tnpm\t10.8.2",
    "labext\t@jupyter-widgets/jupyterlab-manager\t5.0.13",
    "cran\tggplot2\t3.5.1\t/usr/local/lib/R/site-library",
    "maven\torg.dflib.jjava:jjava-kernel\t1.0-a8\t/opt/venv/share/jupyter/kernels/java/jjava.jar",
    "maven\tcom.google.code.gson:gson\t2.11.0\t/opt/venv/share/jupyter/kernels/java/jjava.jar",  # bundled in it
    "maven\tkotlin-stdlib\t2.3.10\t/opt/venv/jars/kotlin-stdlib-2.3.10.jar",  # no coordinates: no purl
    "golang\tgithub.com/gopherdata/gophernotes\tv0.7.5\t/usr/local/bin/gophernotes",
    "golang\tgolang.org/x/tools\tv0.1.8\t/usr/local/bin/gophernotes",
    "golang\tincomplete",
    "kernel\tpython3\tpython\tPython 3 (ipykernel)\t/opt/venv/share/jupyter/kernels/python3/kernel.json",
    "kernel\tpython3\tpython\tPython 3 (ipykernel)\t/usr/local/share/jupyter/kernels/python3/kernel.json",
    "version\tjava\t17.0.12",
    "version\tbroken\t",  # a command that printed nothing gives no version
    "garbage line without tabs",
    "deb\ttruncated",
])
ABOUT = Manifest(image="lab", hash="a" * 64, image_id="sha256:" + "1" * 64, parent="python",
                 fragments=("jupyterlab", "kernel-r"), platform="linux/amd64")


@pytest.fixture
def manifest() -> Manifest:
    return parse_lines(READER_OUTPUT, ABOUT)


def test_parse_reads_every_kind_and_skips_what_is_malformed(manifest: Manifest) -> None:
    assert manifest.os == "Debian GNU/Linux 12 (bookworm)" and manifest.distro == "debian-12"
    assert manifest.environments == {"/opt/venv": "3.11.2"}
    assert [(p.name, p.version) for p in manifest.of("deb")] == [("curl", "7.88.1-10+deb12u5"), ("libc6", "2.36-9+deb12u4")]
    assert {(p.environment, p.name) for p in manifest.of("pypi")} == {
        ("/opt/venv", "JupyterLab"), ("/opt/venv", "jupyter_server"), ("/usr", "jupyterlab")}
    assert manifest.of("conda")[0].channel == "https://conda.anaconda.org/conda-forge"
    assert [p.name for p in manifest.of("npm")] == ["@jupyterlab/builder", "npm"]
    assert [p.name for p in manifest.of("labextension")] == ["@jupyter-widgets/jupyterlab-manager"]
    assert manifest.of("cran")[0].environment == "/usr/local/lib/R/site-library"
    assert [k.name for k in manifest.kernels] == ["python3"]  # found twice, listed once
    assert manifest.versions == {"java": "17.0.12"}
    assert [(p.name, p.environment) for p in manifest.of("maven")] == [  # by the folder of their jar, then name
        ("kotlin-stdlib", "/opt/venv/jars"), ("com.google.code.gson:gson", "/opt/venv/share/jupyter/kernels/java"),
        ("org.dflib.jjava:jjava-kernel", "/opt/venv/share/jupyter/kernels/java")]
    assert {(p.name, p.version, p.environment) for p in manifest.of("golang")} == {
        ("github.com/gopherdata/gophernotes", "v0.7.5", "/usr/local/bin/gophernotes"),
        ("golang.org/x/tools", "v0.1.8", "/usr/local/bin/gophernotes")}
    assert len(manifest.packages) == 15


def test_manifest_round_trips_through_json_and_refuses_other_documents(manifest: Manifest) -> None:
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest
    with pytest.raises(ValueError, match="format"):
        Manifest.from_dict({"image": "x"})
    page = markdown(manifest)
    assert "| parent | python |" in page and "## Debian packages (2)" in page and "| ggplot2 | 3.5.1 |" in page


def test_store_keeps_a_manifest_per_image_id(tmp_path: Path, manifest: Manifest) -> None:
    store = ManifestStore(tmp_path)
    assert store.get(manifest.image_id) is None
    store.put(manifest)
    assert store.get(manifest.image_id) == manifest
    (tmp_path / f"{manifest.image_id.removeprefix('sha256:')}.json").write_text("{not json")
    assert store.get(manifest.image_id) is None


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_reader_script_runs_here_and_passes_version_commands(tmp_path: Path) -> None:
    script = tmp_path / "reader.sh"
    script.write_text(reader_script())
    done = subprocess.run(["sh", str(script), "tool", "echo 1.2.3; echo second line", "silent", "true"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "version\ttool\t1.2.3" in lines and "version\tsilent\t" in lines
    parsed = parse_lines(done.stdout, ABOUT)
    assert parsed.versions == {"tool": "1.2.3"}
    if shutil.which("dpkg-query"):
        assert parsed.of("deb"), "dpkg-query is here: Debian packages are listed"


def test_reader_script_without_any_tool_prints_no_packages_and_succeeds(tmp_path: Path) -> None:
    script = tmp_path / "reader.sh"
    script.write_text(reader_script())
    empty = tmp_path / "bin"
    empty.mkdir()
    sh = shutil.which("sh")
    assert sh is not None
    done = subprocess.run([sh, str(script)], capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": str(empty)})
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stdout.splitlines() if line.startswith(("deb\t", "npm\t", "cran\t"))]


def test_sbom_is_valid_cyclonedx_1_6(manifest: Manifest) -> None:
    text = to_cyclonedx(manifest)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    data = json.loads(text)
    assert data["specVersion"] == "1.6" and data["metadata"]["component"]["type"] == "container"
    purls = {c.get("purl") for c in data["components"]}
    assert "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12" in purls
    assert {"pkg:pypi/jupyterlab@4.2.5", "pkg:pypi/jupyterlab@3.0.0", "pkg:pypi/jupyter-server@2.14.2",
            "pkg:npm/%40jupyterlab/builder@4.2.5", "pkg:cran/ggplot2@3.5.1",
            "pkg:npm/%40jupyter-widgets/jupyterlab-manager@5.0.13", "pkg:maven/org.dflib.jjava/jjava-kernel@1.0-a8",
            "pkg:maven/com.google.code.gson/gson@2.11.0", "pkg:golang/github.com/gopherdata/gophernotes@v0.7.5",
            "pkg:golang/golang.org/x/tools@v0.1.8"} <= purls
    bare = [c for c in data["components"] if c["name"] == "kotlin-stdlib"]
    assert len(bare) == 1 and "purl" not in bare[0] and bare[0]["version"] == "2.3.10"
    assert to_cyclonedx(manifest) == text, "one image, one SBOM: serial number and time come from the image"


def test_a_broken_sbom_fails_the_schema(manifest: Manifest) -> None:
    data = json.loads(to_cyclonedx(manifest))
    data["components"][0]["type"] = "not-a-type"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(data)) is not None


def test_sbom_reads_back_into_the_same_packages(manifest: Manifest) -> None:
    image, packages, versions = from_cyclonedx(to_cyclonedx(manifest))
    assert image == "lab" and versions == {"java": "17.0.12"}
    assert sorted(packages) == sorted(manifest.packages)
    with pytest.raises(ValueError):
        from_cyclonedx('{"spdxVersion": "SPDX-2.3"}')


def test_conda_purl_names_its_channel() -> None:
    assert purl(Package("conda", "numpy", "1.26", channel="conda-forge")).to_string() == \
        "pkg:conda/numpy@1.26?channel=conda-forge"


def test_versions_compare_per_ecosystem() -> None:
    assert compare("deb", "1:1.0-1", "2.0-1") == 1  # the epoch wins
    assert compare("deb", "1.0~rc1-1", "1.0-1") == -1  # ~ sorts before the release
    assert compare("pypi", "1.10", "1.9") == 1 and compare("pypi", "2.0rc1", "2.0") == -1
    assert compare("cran", "1.10-2", "1.9-10") == 1  # not PEP 440: numeric parts
    assert compare("npm", "10.8.2", "9.9.9") == 1


def test_diff_sorts_changes_into_added_removed_upgraded_downgraded() -> None:
    old = [Package("deb", "curl", "7.88.1-10"), Package("deb", "gone", "1.0"), Package("deb", "tzdata", "2024b-1"),
           Package("pypi", "Jupyter_Server", "2.14.0", "/opt/venv")]
    new = [Package("deb", "curl", "8.14.1-2"), Package("deb", "tzdata", "2024a-1"), Package("deb", "fresh", "1.0"),
           Package("pypi", "jupyter-server", "2.15.0", "/opt/venv")]
    result = diff("A", "B", old, new, {"java": "17"}, {"java": "21"})
    kinds = {eco: {k: [c.name for c in v] for k, v in kinds.items() if v} for eco, kinds in result.changes.items()}
    assert kinds == {"deb": {"added": ["fresh"], "removed": ["gone"], "upgraded": ["curl"], "downgraded": ["tzdata"]},
                     "pypi": {"upgraded": ["jupyter-server"]}, "version": {"upgraded": ["java"]}}
    page = diff_markdown(result)
    assert "### Downgraded (1)" in page and "| curl | 7.88.1-10 | 8.14.1-2 |" in page and "## Versions" in page
    assert json.loads(json.dumps(result.to_dict()))["ecosystems"]["deb"]["removed"][0] == {
        "name": "gone", "environment": "", "before": "1.0", "after": None}
    assert diff("A", "A", old, old).empty and "No package changed." in diff_markdown(diff("A", "A", old, old))


@dataclass
class WritableRegistry(FakeRegistry):
    """The fake registry with uploads: blobs by digest, manifests by tag or digest."""

    def put_blob(self, repository: str, data: bytes) -> str:
        self.blobs[sha256(data)] = data
        return sha256(data)

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        self.manifests[sha256(body)] = body
        if not reference.startswith("sha256:"):
            self.tags_of.setdefault(repository, {})[reference] = sha256(body)
        return sha256(body)


@pytest.mark.parametrize("referrers_api", [True, False])
def test_sbom_is_attached_to_the_image_and_found_again(referrers_api: bool) -> None:
    registry = WritableRegistry(referrers_api=referrers_api)
    subject, _ = registry.image("team/lab", ("1.0",), "lab", "2026-01-01T00:00:00Z", {sha256(b"layer"): 10})
    with pytest.raises(NoSbom, match="no SBOM"):
        find_sbom(registry, "team/lab", subject)  # type: ignore[arg-type]
    sbom = b'{"bomFormat": "CycloneDX"}'
    first = attach_sbom(registry, "team/lab", subject, "application/vnd.oci.image.manifest.v1+json", sbom)  # type: ignore[arg-type]
    again = attach_sbom(registry, "team/lab", subject, "application/vnd.oci.image.manifest.v1+json", sbom)  # type: ignore[arg-type]
    assert first == again
    assert find_sbom(registry, "team/lab", subject) == sbom  # type: ignore[arg-type]
    artifact = json.loads(registry.manifests[first])
    assert artifact["subject"]["digest"] == subject and artifact["artifactType"] == "application/vnd.cyclonedx+json"
    index = registry.tags_of["team/lab"].get(fallback_tag(subject))
    if referrers_api:
        assert index is None, "a registry with the referrers API needs no tag"
    else:
        assert [m["digest"] for m in json.loads(registry.manifests[index])["manifests"]] == [first]


def test_test_stage_takes_a_manifest_once_and_keeps_it_in_the_record(tmp_path: Path, stack, manifest: Manifest) -> None:
    from tests.unit.helpers import plan_of
    from tests.unit.test_cache_tests import CHECKED, SPEC, Result

    lab = plan_of(stack(SPEC, CHECKED))["lab"]
    store, manifests = RecordStore(tmp_path / "records"), ManifestStore(tmp_path / "manifests")
    reads: list[str] = []

    def manifest_of(node, image_id, record, local):
        from builder.inventory.taking import known

        found = known(manifests, image_id, record)
        if found is None and local:
            reads.append(node.name)
            found = Manifest.from_dict({**manifest.to_dict(), "image": node.name, "image_id": image_id})
            manifests.put(found)
        return found

    def run(**options):
        return run_tests_by_record([lab], {"lab": "sha256:img"}, lambda n: [Result(n.name, "passed")], lambda _: None,
                                   1, store=store, manifest_of=manifest_of, **options)

    first = run()
    assert reads == ["lab"] and first.manifests["lab"].image_id == "sha256:img"
    record = next(iter(first.earlier.values()), None) or store.get(next(p.stem for p in (tmp_path / "records").glob("*.json")))
    assert record is not None and record.manifest is not None and record.manifest["image_id"] == "sha256:img"
    second = run()
    assert reads == ["lab"] and "lab" in second.earlier and second.manifests["lab"].image == "lab"
    run(force=True)
    assert reads == ["lab"], "a forced test of the same image does not read it again"
    for path in (tmp_path / "manifests").glob("*.json"):
        path.unlink()
    third = run()
    assert reads == ["lab"] and third.manifests["lab"].image_id == "sha256:img", "the record carries it"


def test_manifests_folder_and_the_report_link(tmp_path: Path, manifest: Manifest) -> None:
    from builder.inventory.files import write_manifests
    from builder.reports.report import tests_markdown

    assert write_manifests(tmp_path, {}, to_cyclonedx) is None
    index = write_manifests(tmp_path, {"lab": manifest}, to_cyclonedx)
    assert index == tmp_path / "manifests" / "index.md"
    assert {p.name for p in (tmp_path / "manifests").iterdir()} == {"lab.json", "lab.md", "lab.cdx.json", "index.md"}
    assert "| [lab](lab.md) | 2 | 3 | 1 | 2 | 1 | 1 | 3 | 2 | 1 | [CycloneDX](lab.cdx.json) |" in index.read_text()
    assert Manifest.from_dict(json.loads((tmp_path / "manifests" / "lab.json").read_text())) == manifest
    section = tests_markdown({"lab": {"passed": True, "checks": {"passed": 3}}}, frozenset({"lab"}))
    assert "[packages](manifests/lab.md), [SBOM](manifests/lab.cdx.json)" in section


def test_an_sbom_is_made_once_per_manifest_and_the_code_that_makes_it(tmp_path: Path, manifest: Manifest,
                                                                      monkeypatch) -> None:
    """`stacks test` with nothing to test writes every image's SBOM again: from the store, not the library."""
    import builder.inventory.sbom as sbom_module
    import builder.inventory.store as store_module

    made: list[str] = []
    monkeypatch.setattr(sbom_module, "to_cyclonedx", lambda m: made.append(m.image) or to_cyclonedx(m))
    store = ManifestStore(tmp_path)
    first = store.sbom(manifest)
    assert json.loads(first)["bomFormat"] == "CycloneDX" and made == ["lab"]
    assert store.sbom(manifest) == first and made == ["lab"]  # kept
    store.sbom(replace(manifest, read="2026-12-24T00:00:00+00:00"))  # another reading, another SBOM
    assert made == ["lab", "lab"]
    store_module._sbom_maker.cache_clear()
    monkeypatch.setattr(store_module.metadata, "version", lambda name: "99.0")  # another CycloneDX library
    store.sbom(manifest)
    assert made == ["lab", "lab", "lab"]
    store_module._sbom_maker.cache_clear()
