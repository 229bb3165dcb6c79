"""The `stacks` command line: thin wrappers that call one stage each.

Bad input never shows a traceback: every SpecError is printed as
`file:line:col: error: ...` lines on stderr and the exit status is 2.
Exit codes (README.md): 0 ok, 1 the work failed (a build, a check, a push,
lint findings), 2 bad input or usage, 130 interrupted.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from builder.app.completion import complete_images
from builder.errors import SpecError

if TYPE_CHECKING:  # the commands import their modules when run: `stacks --help` stays fast
    from builder.plan.plan import Plan
    from builder.plan.render import Mode

ONLY_VERIFIED = click.option(
    "--only-verified", is_flag=True, envvar="STACKS_ONLY_VERIFIED",
    help="Leave out images whose base or fragments are marked unverified (sources this host cannot reach). "
         "Also: STACKS_ONLY_VERIFIED=1.",
)
#: the IMAGES of build, test, tags, push, matrix, bake and lock: definitions or variants, completed from the plan
IMAGES_ARGUMENT = click.argument("images", nargs=-1, shell_complete=complete_images)
FILE_OPTION = click.option(
    "-f", "--file", "spec_file", type=click.Path(path_type=Path), default=Path("stacks.yaml"),
    show_default=True, help="The stacks file to use.",
)


def _plan(spec_file: Path, mode: Mode = "buildkit") -> Plan:
    from builder.plan.plan import load_plan

    result = load_plan(spec_file, mode)
    for problem in result.warnings:
        click.echo(str(problem), err=True)
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="jupyter-stacks", prog_name="stacks")
def cli() -> None:
    """Build, test and publish layered Jupyter images from one stacks.yaml."""


@cli.command()
@FILE_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list instead of a table (with --explain: each row has 'build': {cached, reasons}).")
@click.option("--explain", is_flag=True, help="Ask the Docker engine which images are cached and why others would be built.")
@click.option("--platform", "platforms", multiple=True, metavar="OS/ARCH",
              help="Only this platform (repeatable). Default: every platform the stack's bases declare "
                   "(with --explain: the engine's own).")
def plan(spec_file: Path, as_json: bool, explain: bool, platforms: tuple[str, ...]) -> None:
    """Show every concrete image of every platform: parent, fragments, tags and content hash."""
    if explain:
        from builder.app.commands import explain_plan, explain_rows

        if as_json:
            click.echo(json.dumps(explain_rows(spec_file, platforms), indent=2))
        else:
            click.echo(explain_plan(spec_file, platforms), nl=False)
        return
    plans = _platform_plans(spec_file, platforms)
    rows = [node.summary() for result in plans for node in result]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("IMAGE", "PLATFORM", "KIND", "PARENT", "FRAGMENTS", "TAGS", "HASH", "CI")]
    for row in rows:
        table.append((
            row["name"], row["platform"], row["kind"], row["parent"] or "-",
            ",".join(f["name"] for f in row["fragments"]) or "-",
            ",".join(row["tags"]) or "-", row["hash"][:12], "yes" if row["verified"] else "no",
        ))
    click.echo(_format_table(table))
    from builder.plan.tags import late_templates

    if late_templates(plans[0].spec.model.settings):
        click.echo("\nTAGS has the tags known now; those read from built images (versions, date, git_sha): `stacks tags`")
    for result in plans:
        if result.left_out:
            click.echo(f"\nnot built for {result.platform}: "
                       + ", ".join(f"{name} ({why})" for name, _, why in result.left_out))
    unverified = sum(not r["verified"] for r in rows)
    click.echo(f"\n{len(rows)} nodes on {len(plans)} platform{'s' if len(plans) != 1 else ''} "
               f"({', '.join(p.platform for p in plans)}): {sum(r['kind'] == 'image' for r in rows)} images to build, "
               f"{sum(r['kind'] != 'image' for r in rows)} bases"
               + (f"; {unverified} unverified (CI column 'no'; see `stacks plan --json` for why)" if unverified else ""))


def _platform_plans(spec_file: Path, platforms: tuple[str, ...]) -> list[Plan]:
    """A plan per platform asked for, or per platform the bases declare; foreign tags as on this host's engine."""
    import platform as host

    from builder.app.workspace import parse_platforms
    from builder.plan.plan import load_plans, stack_platforms
    from builder.reference import platform_of_machine

    first = _plan(spec_file)
    wanted = parse_platforms(platforms) or stack_platforms(first)
    return load_plans(spec_file, "buildkit", wanted, platform_of_machine(host.machine()))


#: --platform of build and test: which platforms' chains to build or test (foreign ones under QEMU emulation)
#: --platform of push: which platforms each tag serves (several: an OCI index of them)
PUSH_PLATFORM_OPTION = click.option(
    "--platform", "platforms", multiple=True, metavar="OS/ARCH", envvar="STACKS_PLATFORM",
    help="Platform to publish (repeatable; each must be built and tested for it). Several: every tag serves an "
         "OCI index of all of them. Default: the engine's own. Also: STACKS_PLATFORM='linux/amd64,linux/arm64'.",
)
BUILD_PLATFORM_OPTION = click.option(
    "--platform", "platforms", multiple=True, metavar="OS/ARCH", envvar="STACKS_PLATFORM",
    help="Platform to build for, e.g. linux/arm64 (repeatable; another architecture than the engine's runs under "
         "QEMU emulation). Default: the engine's own. Also: STACKS_PLATFORM='linux/amd64,linux/arm64'.",
)


def cache_options(command):
    """--cache REF / --cache-read-only (STACKS_CACHE, STACKS_CACHE_READONLY): the registry cache (docs/cache.md)."""
    command = click.option("--cache-read-only", "cache_read_only", is_flag=True, envvar="STACKS_CACHE_READONLY",
                           help="Read the cache, never write it (pull requests from forks).")(command)
    return click.option("--cache", "cache", default=None, metavar="HOST[:PORT]/REPOSITORY", envvar="STACKS_CACHE",
                        help="Registry cache of images and test records by content hash, instead of settings.cache; "
                             "'none' turns it off. Also: STACKS_CACHE.")(command)


@cli.command()
@FILE_OPTION
@IMAGES_ARGUMENT
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel build slots (a heavy image takes several). Default: settings.build.jobs or the CPU count.")
@click.option("--explain", is_flag=True, help="Print, per image, why it is built or cached before building.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True,
              help="Where logs, contexts and the report go.")
@click.option("--ca-cert", "ca_certs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra CA certificate (PEM) builds should trust; repeatable. Also: STACKS_CA_CERTS=a.pem:b.pem.")
@click.option("--no-cache", "no_cache", is_flag=True,
              help="Build the selected images again (not their bases), every step anew: no image of the same content "
                   "hash, no layer of an earlier build, no registry cache is used.")
@BUILD_PLATFORM_OPTION
@ONLY_VERIFIED
@cache_options
def build(spec_file: Path, images: tuple[str, ...], jobs: int | None, explain: bool, out: Path,
          ca_certs: tuple[Path, ...], no_cache: bool, platforms: tuple[str, ...], only_verified: bool, cache: str | None,
          cache_read_only: bool) -> None:
    """Build IMAGES and their ancestors (default: the whole matrix), skipping unchanged ones."""
    from builder.app.commands import run_build

    argv = (click.get_current_context().find_root().obj or {}).get("argv")  # set by main(): the receipt's name
    code = run_build(spec_file, list(images), jobs, explain, out, ca_certs, only_verified, (cache, cache_read_only),
                     receipt=argv, no_cache=no_cache, platforms=platforms)
    sys.exit(code)


@cli.command(name="test")
@FILE_OPTION
@IMAGES_ARGUMENT
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Images tested at the same time.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True)
@click.option("--allow-not-run", "allow_not_run", multiple=True, metavar="CHECK",
              help="A check (by name or kind, e.g. browser) that may stay 'not run' without failing its image; repeatable. "
                   "Checks that need missing hardware (a GPU) never fail for that.")
@click.option("--force", is_flag=True, help="Test again images that passed earlier with the same content, checks and tool.")
@BUILD_PLATFORM_OPTION
@ONLY_VERIFIED
@cache_options
def test_images(spec_file: Path, images: tuple[str, ...], jobs: int | None, out: Path, allow_not_run: tuple[str, ...],
                only_verified: bool, force: bool, platforms: tuple[str, ...], cache: str | None,
                cache_read_only: bool) -> None:
    """Smoke-test built IMAGES (default: all): every check and kernel snippet their fragments declare."""
    from builder.app.commands import run_tests

    sys.exit(run_tests(spec_file, list(images), out, jobs, only_verified, force, (cache, cache_read_only), allow_not_run,
                       platforms))


REGISTRY_OPTION = click.option(
    "--registry", default=None, metavar="HOST[:PORT][/NAMESPACE]", envvar="STACKS_REGISTRY",
    help="Registry and namespace to publish to, instead of settings.registry. Also: STACKS_REGISTRY.",
)


@cli.command()
@FILE_OPTION
@IMAGES_ARGUMENT
@REGISTRY_OPTION
@click.option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True,
              help="Where the test report is (whether an image may be pushed).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@PUSH_PLATFORM_OPTION
@ONLY_VERIFIED
def tags(spec_file: Path, images: tuple[str, ...], registry: str | None, out: Path, as_json: bool,
         platforms: tuple[str, ...], only_verified: bool) -> None:
    """What `stacks push` would publish: per image its repository and tags (immutable, then moving), with the
    versions read out of built images; templates that need the built image are shown as such. With several
    --platform, a line per platform says what each would put in the index the tags serve."""
    from builder.app.publish_cmd import run_tags

    sys.exit(run_tags(spec_file, list(images), registry, out, only_verified, as_json, platforms))


@cli.command()
@FILE_OPTION
@IMAGES_ARGUMENT
@REGISTRY_OPTION
@click.option("--dry-run", is_flag=True, help="Check everything and print what would be pushed; push nothing.")
@click.option("--overwrite-immutable", is_flag=True,
              help="Replace immutable tags that already hold other content (refused by default).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True,
              help="Where the test report is and the push manifest goes.")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="Where to write the push manifest (JSON). Default: OUT/push-manifest.json.")
@PUSH_PLATFORM_OPTION
@ONLY_VERIFIED
@cache_options
def push(spec_file: Path, images: tuple[str, ...], registry: str | None, dry_run: bool, overwrite_immutable: bool,
         out: Path, manifest: Path | None, platforms: tuple[str, ...], only_verified: bool, cache: str | None,
         cache_read_only: bool) -> None:
    """Publish tested IMAGES (default: every image with `push: true`): immutable tags first, moving ones after,
    each verified against the registry; tags already there are skipped. With several --platform, each tag serves
    an OCI index of every platform's image. Credentials: STACKS_REGISTRY_USER and STACKS_REGISTRY_PASSWORD, or
    the Docker config (`docker login`)."""
    from builder.app.publish_cmd import run_push

    sys.exit(run_push(spec_file, list(images), registry, dry_run, out, manifest, only_verified, overwrite_immutable,
                      (cache, True), platforms))


@cli.command()
@FILE_OPTION
@IMAGES_ARGUMENT
@click.option("--update", is_flag=True,
              help="Resolve the selected images (default: all) anew instead of keeping the entries they have.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Parallel build slots (as for build).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True,
              help="Where the logs and the build report go.")
@click.option("--ca-cert", "ca_certs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra CA certificate (PEM) builds should trust; repeatable. Also: STACKS_CA_CERTS=a.pem:b.pem.")
@ONLY_VERIFIED
def lock(spec_file: Path, images: tuple[str, ...], update: bool, jobs: int | None, out: Path,
         ca_certs: tuple[Path, ...], only_verified: bool) -> None:
    """Write stacks.lock beside the stacks file: per image, the versions of every Python and npm package no
    fragment pins, read from the image built without a lock entry (built first when needed). Images already
    locked keep their entries unless --update is given (`stacks lock --update lab` resolves lab anew). Builds
    install with the lock as constraints; an entry is part of its image's content hash (docs/lock.md)."""
    from builder.app.lock_cmd import run_lock

    sys.exit(run_lock(spec_file, list(images), update, jobs, out, ca_certs, only_verified))


@cli.command()
@FILE_OPTION
@click.argument("image", metavar="IMAGE|REF", shell_complete=complete_images)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the SBOM to this file instead of stdout.")
def sbom(spec_file: Path, image: str, out: Path | None) -> None:
    """The CycloneDX 1.6 SBOM of an image: a local one (an image of the stacks file, or a local reference) from
    its package manifest, a pushed one (HOST[:PORT]/REPOSITORY:TAG or @DIGEST) from the registry, where `stacks
    push` attached it to the image manifest."""
    from builder.app.inventory_cmd import run_sbom

    sys.exit(run_sbom(spec_file, image, out))


@cli.command()
@FILE_OPTION
@click.option("--all", "show_all", is_flag=True, help="List every pin, not only those behind the newest release.")
@click.option("--no-lock", "no_lock", is_flag=True, help="Check only the fragments' pins, not stacks.lock's.")
@click.option("--ca-cert", "ca_certs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra CA certificate (PEM) to trust; repeatable. Also: STACKS_CA_CERTS=a.pem:b.pem.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: every pin with its newest release and state.")
def outdated(spec_file: Path, show_all: bool, no_lock: bool, ca_certs: tuple[Path, ...], as_json: bool) -> None:
    """The Python and npm versions the fragments pin (their pip/npm install commands, as rendered with params)
    and stacks.lock holds, against the newest releases on the indexes builds use (PyPI and npm, or the mirrors
    of STACKS_PIP_INDEX_URL / STACKS_NPM_REGISTRY and settings.build, trusting STACKS_CA_CERTS). Exit status 1
    when an index cannot be reached."""
    from builder.app.outdated_cmd import run_outdated

    sys.exit(run_outdated(spec_file, ca_certs, show_all, not no_lock, as_json))


@cli.command()
@FILE_OPTION
@click.argument("before", metavar="A", shell_complete=complete_images)
@click.argument("after", metavar="B", shell_complete=complete_images)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
def diff(spec_file: Path, before: str, after: str, as_json: bool) -> None:
    """What changed from image A to image B, per ecosystem (Debian, Python, conda, npm, JupyterLab extensions,
    R, the fragments' versions): packages added, removed, upgraded and downgraded, as Markdown for release
    notes. A and B are local images (by name or reference) or pushed ones (HOST[:PORT]/REPOSITORY:TAG)."""
    from builder.app.inventory_cmd import run_diff

    sys.exit(run_diff(spec_file, before, after, as_json))


@cli.group(name="cache")
def cache_group() -> None:
    """The registry cache of images and test records (docs/cache.md)."""


@cache_group.command(name="prune")
@FILE_OPTION
@click.option("--cache", "cache", default=None, metavar="HOST[:PORT]/REPOSITORY", envvar="STACKS_CACHE",
              help="The cache to prune, instead of settings.cache. Also: STACKS_CACHE.")
@REGISTRY_OPTION
@click.option("--keep", type=click.IntRange(min=0), default=3, show_default=True, envvar="STACKS_CACHE_KEEP",
              help="Builds kept per image name and platform, newest first by the image config's creation time. "
                   "Also: STACKS_CACHE_KEEP.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed and the bytes it frees; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def cache_prune(spec_file: Path, cache: str | None, registry: str | None, keep: int, dry_run: bool, as_json: bool) -> None:
    """Remove cached images nothing needs any more, with their test records. Kept: every image of the current
    plan, the last --keep builds of each image name (and what they were built on), whatever a tag of a release
    repository serves, the layer-cache tags and anything stacks did not write. Deletes through the registry's
    API (records first); a registry that refuses gets the exact list instead, and nothing is deleted."""
    from builder.app.cache_cmd import run_prune

    sys.exit(run_prune(spec_file, cache, registry, keep, dry_run, as_json))


@cli.command(name="hub-config")
@FILE_OPTION
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/hub"), show_default=True,
              help="Where jupyterhub_config.py, compose.yaml and env.example go.")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Push manifest (`stacks push`): offer the pushed images by registry tag instead of local references.")
def hub_config(spec_file: Path, out: Path, manifest: Path | None) -> None:
    """Write a JupyterHub (DockerSpawner) configuration and compose file over the built images: the single-user
    images to choose from by name and exact reference, per-user volumes, network, admins, authenticator and
    optional GPUs, as the hub: section of stacks.yaml says. Secrets stay in the Hub's environment."""
    from builder.app.outputs_cmd import run_hub_config

    sys.exit(run_hub_config(spec_file, out, manifest))


@cli.command()
@FILE_OPTION
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/rendered"), show_default=True,
              help="Directory that receives one folder per image.")
def render(spec_file: Path, out: Path) -> None:
    """Write each image's Dockerfile and build context."""
    from builder.plan.render import write_all

    count = write_all(_plan(spec_file).images(), out)
    click.echo(f"rendered {count} images into {out}/")


@cli.command()
@FILE_OPTION
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg", "png"]), default="mermaid", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write to this file instead of stdout.")
def graph(spec_file: Path, fmt: str, out: Path | None) -> None:
    """Draw the image DAG (Mermaid, DOT, or SVG/PNG through Graphviz)."""
    from builder.outputs import graph as draw

    result = _plan(spec_file)
    data: bytes = draw.picture(result, fmt) if fmt in ("svg", "png") else getattr(draw, fmt)(result).encode()
    if out is not None:
        from builder.owned import write_file

        write_file(out, data)
        click.echo(f"wrote {out}", err=True)
    elif fmt == "png" and sys.stdout.isatty():
        raise click.UsageError("PNG is binary: pass --out FILE or redirect stdout")
    else:
        sys.stdout.buffer.write(data)


@cli.command()
@FILE_OPTION
@click.option("--kind", type=click.Choice(["stacks", "fragment"]), default="stacks", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write both schemas into this directory.")
def schema(spec_file: Path, kind: str, out: Path | None) -> None:
    """Print the JSON Schema of stacks.yaml or fragment.yaml (for editors)."""
    from builder.specification.schema import SCHEMAS, schema_text

    if out is None:
        click.echo(schema_text(kind), nl=False)
        return
    from builder.owned import claim_dir

    with claim_dir(out) as owned:
        for name in SCHEMAS:
            owned.write(f"{name}.schema.json", schema_text(name))
    click.echo(f"wrote {', '.join(f'{n}.schema.json' for n in SCHEMAS)} into {out}/")


PLATFORM_OPTION = click.option("--platform", "platforms", multiple=True, metavar="OS/ARCH",
                               help="Only this platform (repeatable); default: every platform of the selection.")


@cli.command()
@FILE_OPTION
@IMAGES_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="One line of JSON for CI: {roots: {include: [...]}, branches: {...}}.")
@PLATFORM_OPTION
@click.option("--runner", "runners", multiple=True, metavar="PLATFORM=LABEL",
              help="CI runner label of a platform (repeatable); defaults: linux/amd64=ubuntu-24.04, linux/arm64=ubuntu-24.04-arm.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=8, show_default=True, help="Jobs per platform and stage at most.")
@ONLY_VERIFIED
def matrix(spec_file: Path, images: tuple[str, ...], as_json: bool, platforms: tuple[str, ...], runners: tuple[str, ...],
           max_jobs: int, only_verified: bool) -> None:
    """The CI job matrix: per platform, jobs that build the roots of the DAG, then jobs for the subtrees below them."""
    from builder.app.outputs_cmd import run_matrix

    run_matrix(spec_file, images, only_verified, platforms, runners, max_jobs, as_json)


@cli.command()
@FILE_OPTION
@IMAGES_ARGUMENT
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/docker-bake.json"), show_default=True,
              help="The bake file to write.")
@click.option("--contexts", type=click.Path(path_type=Path), default=None,
              help="Where the build contexts go. Default: a 'bake' folder beside the bake file.")
@click.option("--cache", type=click.Choice(["inline", "registry", "gha", "none"]), default="inline", show_default=True,
              help="Build cache of each target: inline in the pushed image, a registry cache ref, GitHub Actions' cache, or none.")
@click.option("--cache-repo", default=None, metavar="REPO", help="With --cache registry: one repository for all caches (tag = target).")
@click.option("--bases-from", default=None, metavar="REGISTRY/PREFIX",
              help="Take bootstrapped bases from this registry prefix instead of the local engine (remote builders).")
@PLATFORM_OPTION
@click.option("--ca-cert", "ca_certs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra CA certificate (PEM) for the stacks-ca secret; repeatable. Also: STACKS_CA_CERTS.")
@ONLY_VERIFIED
def bake(spec_file: Path, images: tuple[str, ...], out: Path, contexts: Path | None, cache: str, cache_repo: str | None,
         bases_from: str | None, platforms: tuple[str, ...], ca_certs: tuple[Path, ...], only_verified: bool) -> None:
    """Write a docker-bake.json (one target per image, parents as `target:` contexts) for `docker buildx bake`."""
    from builder.app.outputs_cmd import run_bake

    sys.exit(run_bake(spec_file, images, out, contexts, cache, cache_repo, bases_from, platforms, ca_certs, only_verified))


@cli.command()
@FILE_OPTION
@click.option("--hadolint", "hadolint", default=None, metavar="PATH", help="The hadolint binary (default: beside Python, then PATH).")
@click.option("--no-hadolint", is_flag=True, help="Skip hadolint (the other checks still run).")
def lint(spec_file: Path, hadolint: str | None, no_hadolint: bool) -> None:
    """Check every fragment and the spec before any build: schemas, template variables, smoke snippets,
    pinned versions, checked downloads, and hadolint on every rendered Dockerfile. Problems name file and line."""
    from builder.app.lint_cmd import run_lint

    sys.exit(run_lint(spec_file, hadolint, not no_hadolint))


@cli.group()
def new() -> None:
    """Scaffold new parts of a stack."""


@new.command(name="kernel")
@FILE_OPTION
@click.argument("name")
@click.option("--package", default=None, help="PyPI package of the kernel. Default: bash_kernel (builds as is).")
@click.option("--version", "version", default=None, help="Its version, pinned (needed for packages stacks has no recipe for).")
@click.option("--language", default=None, help="Language the kernel speaks (picks the smoke snippet).")
@click.option("--kernelspec", default=None, help="Kernelspec name it registers. Default: NAME.")
@click.option("--install", default=None, help="Command that registers the kernelspec. Default: python -m PACKAGE.install --sys-prefix.")
@click.option("--snippet", default=None, help="Code that prints something (the smoke test).")
@click.option("--expect", default=None, help="Regular expression the snippet's output must match.")
@click.option("--parent", default="lab", show_default=True, help="Image the new image builds on.")
@click.option("--image", default=None, help="Name of the new image. Default: PARENT-NAME.")
@click.option("--into", default=None, metavar="IMAGE", help="Add the fragment to this existing image instead of a new one.")
def new_kernel(spec_file: Path, name: str, package: str | None, version: str | None, language: str | None,
               kernelspec: str | None, install: str | None, snippet: str | None, expect: str | None, parent: str,
               image: str | None, into: str | None) -> None:
    """Scaffold fragments/kernel-NAME (fragment.yaml with a smoke snippet, Dockerfile.j2) and add it to stacks.yaml."""
    from builder.app.outputs_cmd import run_new_kernel

    run_new_kernel(spec_file, name, package, version, language, kernelspec, install, snippet, expect, parent, image, into)


def _format_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning input errors into readable messages and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="stacks", standalone_mode=False, obj={"argv": args})
    except SpecError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = sum(p.severity == "error" for p in exc.problems)
        click.echo(f"{count} error{'s' if count != 1 else ''}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 1 else exc.exit_code)  # a refused option or precondition is bad usage: 2
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if os.environ.get("STACKS_DEBUG"):  # pragma: no cover
    main = cli  # full tracebacks for debugging the tool itself
