"""The `stacks` command line: thin wrappers that call one stage each.

Bad input never shows a traceback: every SpecError is printed as
`file:line:col: error: ...` lines on stderr and the exit status is 2.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .errors import SpecError

ONLY_VERIFIED = click.option(
    "--only-verified", is_flag=True, envvar="STACKS_ONLY_VERIFIED",
    help="Leave out images whose base or fragments are marked unverified (sources this host cannot reach). "
         "Also: STACKS_ONLY_VERIFIED=1.",
)
FILE_OPTION = click.option(
    "-f", "--file", "spec_file", type=click.Path(path_type=Path), default=Path("stacks.yaml"),
    show_default=True, help="The stacks file to use.",
)


def _plan(spec_file: Path, mode: str = "buildkit"):
    from .plan import load_plan

    return load_plan(spec_file, mode)  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="jupyter-stacks", prog_name="stacks")
def cli() -> None:
    """Build, test and publish layered Jupyter images from one stacks.yaml."""


@cli.command()
@FILE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--explain", is_flag=True, help="Ask the Docker engine which images are cached and why others would be built.")
def plan(spec_file: Path, as_json: bool, explain: bool) -> None:
    """Show every concrete image: parent, fragments, tags and content hash."""
    if explain:
        from .run import explain_plan

        click.echo(explain_plan(spec_file), nl=False)
        return
    result = _plan(spec_file)
    rows = [node.summary() for node in result]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("IMAGE", "KIND", "PARENT", "FRAGMENTS", "TAGS", "HASH", "CI")]
    for row in rows:
        table.append((
            row["name"], row["kind"], row["parent"] or "-",
            ",".join(f["name"] for f in row["fragments"]) or "-",
            ",".join(row["tags"]) or "-", row["hash"][:12], "yes" if row["verified"] else "no",
        ))
    click.echo(_format_table(table))
    unverified = sum(not r["verified"] for r in rows)
    click.echo(f"\n{len(rows)} nodes: {sum(r['kind'] == 'image' for r in rows)} images to build, "
               f"{sum(r['kind'] != 'image' for r in rows)} bases"
               + (f"; {unverified} unverified (CI column 'no'; see `stacks plan --json` for why)" if unverified else ""))


@cli.command()
@FILE_OPTION
@click.argument("images", nargs=-1)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel build slots (a heavy image takes several). Default: settings.build.jobs or the CPU count.")
@click.option("--explain", is_flag=True, help="Print, per image, why it is built or cached before building.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True,
              help="Where logs, contexts and the report go.")
@click.option("--ca-cert", "ca_certs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra CA certificate (PEM) builds should trust; repeatable. Also: STACKS_CA_CERTS=a.pem:b.pem.")
@ONLY_VERIFIED
def build(spec_file: Path, images: tuple[str, ...], jobs: int | None, explain: bool, out: Path,
          ca_certs: tuple[Path, ...], only_verified: bool) -> None:
    """Build IMAGES and their ancestors (default: the whole matrix), skipping unchanged ones."""
    from .run import run_build

    code = run_build(spec_file, list(images), jobs, explain, out, ca_certs, only_verified)
    sys.exit(code)


@cli.command(name="test")
@FILE_OPTION
@click.argument("images", nargs=-1)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Images tested at the same time.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build"), show_default=True)
@ONLY_VERIFIED
def test_images(spec_file: Path, images: tuple[str, ...], jobs: int | None, out: Path, only_verified: bool) -> None:
    """Smoke-test built IMAGES (default: all): every check and kernel snippet their fragments declare."""
    from .run import run_tests

    sys.exit(run_tests(spec_file, list(images), out, jobs, only_verified))


@cli.command()
@FILE_OPTION
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/rendered"), show_default=True,
              help="Directory that receives one folder per image.")
def render(spec_file: Path, out: Path) -> None:
    """Write each image's Dockerfile and build context."""
    from .render import write_context

    result = _plan(spec_file)
    count = 0
    for node in result.images():
        assert node.rendered is not None
        write_context(node.rendered, out / node.name)
        count += 1
    click.echo(f"rendered {count} images into {out}/")


@cli.command()
@FILE_OPTION
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg", "png"]), default="mermaid", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write to this file instead of stdout.")
def graph(spec_file: Path, fmt: str, out: Path | None) -> None:
    """Draw the image DAG (Mermaid, DOT, or SVG/PNG through Graphviz)."""
    from . import graph as draw

    result = _plan(spec_file)
    data: bytes = draw.picture(result, fmt) if fmt in ("svg", "png") else getattr(draw, fmt)(result).encode()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
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
    from .schema import SCHEMAS, schema_text

    if out is None:
        click.echo(schema_text(kind), nl=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    for name in SCHEMAS:
        (out / f"{name}.schema.json").write_text(schema_text(name), encoding="utf-8")
    click.echo(f"wrote {', '.join(f'{n}.schema.json' for n in SCHEMAS)} into {out}/")


def _format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning input errors into readable messages and exit status 2."""
    try:
        cli.main(args=argv, prog_name="stacks", standalone_mode=False)
    except SpecError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"{count} error{'s' if count != 1 else ''}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if os.environ.get("STACKS_DEBUG"):  # pragma: no cover
    main = cli  # type: ignore[assignment]  # full tracebacks for debugging the tool itself
