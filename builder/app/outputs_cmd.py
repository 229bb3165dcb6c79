"""The commands that write files for other tools: `stacks bake`, `matrix`, `hub-config` and `new kernel`.

builder/outputs/ makes the documents; this module loads the plan, reports
to the user and turns bad input into click errors with the right exit status.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import click

from builder.adapters.docker import DockerEngine, connect
from builder.adapters.engine_address import EngineAddress
from builder.app.workspace import Workspace
from builder.building.site import SiteError, ca_bundle
from builder.errors import SpecError, raise_if_any
from builder.outputs.bake import BakeOptions, bake_graph, bootstrapped_bases, check_bake, graph_difference, make_bake, plan_graph, write_bake
from builder.outputs.ci_matrix import make_matrix, parse_runners, table
from builder.outputs.hub_config import (COMPOSE_FILE, CONFIG_FILE, ENV_FILE, compose_text, config_text, docker_socket_gid, dotenv,
                                        env_text, hub_plan, manifest_refs, password_problems, version_warnings)
from builder.owned import claim_dir, write_file
from builder.outputs.scaffold import _title, new_kernel, recipe_for
from builder.plan.plan import make_plan, platform_warnings
from builder.specification.models import HubSettings

Say = Callable[[str], None]


def _err(line: str) -> None:
    click.echo(line, err=True)


def run_bake(spec_file: Path, images: Iterable[str], out: Path, contexts: Path | None, cache: str,
             cache_repo: str | None, bases_from: str | None, platforms: Iterable[str], ca_certs: tuple[Path, ...],
             only_verified: bool) -> int:
    """`stacks bake`: write the bake file and the contexts, then check the file and its graph against the plan."""
    ws = Workspace(spec_file=spec_file, out=out.parent, say=_err)
    plan = ws.plan("buildkit")  # bake always builds with BuildKit
    nodes = ws.select(plan, list(images), only_verified)
    for problem in platform_warnings(plan, platforms):
        _err(str(problem))
    site = ws.site(plan, ca_certs)
    try:
        site.check("buildkit")
    except SiteError as exc:
        raise click.ClickException(str(exc)) from None
    ca_file = None
    if site.ca_certificates:
        ca_file = out.parent / "ca-bundle.pem"
        write_file(ca_file, ca_bundle(site.ca_certificates))
    mirrors = tuple((k, v) for k, v in (("PIP_INDEX_URL", site.pip_index_url), ("NPM_CONFIG_REGISTRY", site.npm_registry)) if v)
    options = BakeOptions(contexts_dir=contexts or out.parent / "bake", cache=cache, cache_repo=cache_repo,
                          bases_from=bases_from, platforms=tuple(platforms), ca_file=ca_file, build_args=mirrors)
    document = make_bake(plan, nodes, options)
    write_bake(document, out)
    mistakes = check_bake(document, Path.cwd()) + graph_difference(plan_graph(nodes, options), bake_graph(document, Path.cwd()))
    for mistake in mistakes:
        click.echo(f"{out}: error: {mistake}", err=True)
    if mistakes:
        return 1
    targets = document["target"]
    click.echo(f"wrote {out}: {len(targets)} targets ({len(document['group']['default']['targets'])} in group 'default'), "
               f"contexts in {options.contexts_dir}/")
    bases = bootstrapped_bases(nodes, options)
    if bases:
        names = " ".join(b.name for b in bases)
        where = f"and push them to {bases_from} under the same names" if bases_from else "(the docker driver reads them from this engine)"
        click.echo(f"bootstrapped bases are not built by bake: first `stacks build {names}` {where}")
    click.echo(f"then, from this directory: docker buildx bake -f {out} [--push | --load] [TARGET...]")
    return 0


def run_matrix(spec_file: Path, images: Iterable[str], only_verified: bool, platforms: Iterable[str],
               runners: Iterable[str], max_jobs: int, as_json: bool) -> None:
    """`stacks matrix`: the jobs as a table, or (--json) the one-line JSON the CI workflow reads."""
    try:
        runner_map = parse_runners(runners)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    plan = Workspace(spec_file=spec_file).plan()
    for problem in platform_warnings(plan, platforms):
        _err(str(problem))
    matrix = make_matrix(plan, images, only_verified, platforms, runner_map, max_jobs,
                         lambda platform: make_plan(plan.spec, plan.mode, platform, native=platform))
    if as_json:
        click.echo(json.dumps(matrix.to_json(), separators=(",", ":")))
    else:
        click.echo(table(matrix))


def _engine_check(address: EngineAddress, say: Say) -> Callable[[str], bool] | None:
    """`built(ref)` against the engine at `address`, or None (with a warning) when none answers."""
    try:
        engine = DockerEngine(connect(address), "classic", None, "inspect only")
    except SpecError as exc:
        say(f"warning: {exc.problems[0].message}; not checking that the images are built")
        return None
    return lambda ref: engine.image(ref) is not None


def run_hub_config(spec_file: Path, out: Path, manifest: Path | None, say: Say = click.echo) -> int:
    """`stacks hub-config`: write the Hub's config, compose file and .env example for the built images."""
    ws = Workspace(spec_file=spec_file, out=out, say=_err)
    plan = ws.plan()
    settings = plan.spec.model.hub or HubSettings()
    refs = manifest_refs(manifest) if manifest is not None else {}
    address = ws.engine_address
    hub = hub_plan(plan, settings, refs, _engine_check(address, _err), docker_socket_gid(address.host))
    raise_if_any(password_problems(plan, hub, {**dotenv(out / ".env"), **ws.env}))
    for warning in version_warnings(plan, hub):
        click.echo(f"warning: {warning}", err=True)
    with claim_dir(out, user_files=frozenset({".env"})) as owned:  # the operator's filled-in copy of env.example
        for name, text in ((CONFIG_FILE, config_text(hub)), (COMPOSE_FILE, compose_text(hub)), (ENV_FILE, env_text(hub))):
            owned.write(name, text)
    say(f"hub: {hub.hub_ref}")
    for image in hub.images:
        say(f"  {image.name} -> {image.ref}{'  (GPU)' if image.gpu else ''}{'  (default)' if image.name == hub.default else ''}")
    say(f"wrote {CONFIG_FILE}, {COMPOSE_FILE} and {ENV_FILE} into {out}/")
    say(f"next: cd {out} && cp {ENV_FILE} .env (fill it in) && docker compose up -d  (docs/jupyterhub.md)")
    return 0


def run_new_kernel(spec_file: Path, name: str, package: str | None, version: str | None, language: str | None,
                   kernelspec: str | None, install: str | None, snippet: str | None, expect: str | None,
                   parent: str, image: str | None, into: str | None) -> None:
    """`stacks new kernel`: scaffold, then say what to do next."""
    try:
        recipe = recipe_for(package, version, language, kernelspec, install, snippet, expect, name.removeprefix("kernel-"))
        made = new_kernel(spec_file, name, recipe, parent, image, into)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None  # bad input: exit 2, as for every command (README: exit codes)
    for path in made.files:
        click.echo(f"created {path}")
    click.echo(f"{'added image' if made.created_image else 'added the fragment to image'} '{made.image}' in {spec_file}")
    first = made.variants[0] if made.variants else made.image
    flag = "" if Path(spec_file) == Path("stacks.yaml") else f" -f {spec_file}"
    click.echo("next:\n"
               f"  stacks lint{flag}\n"
               f"  stacks build{flag} {first}    # parents first; unchanged ones are cached\n"
               f"  stacks test{flag} {first}     # runs the kernel snippet and the checks\n"
               f"then add a row to docs/fragments.md: | {made.fragment} | yes | `{first}`: {_title(recipe.language)} cell prints {recipe.expect} |")
