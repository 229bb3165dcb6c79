"""The shape of `stacks.yaml` and `fragment.yaml`, as pydantic models.

These models are the one description of both file formats: they validate
input (collecting every error with its path), give defaults, and produce the
JSON Schema that `stacks schema` prints for editors. Cross-references (an
unknown parent, a missing fragment) are checked later, in `spec.py`, because
they need more than one file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from builder.errors import Problem, did_you_mean
from builder.specification.yamlsrc import MarkedDict, locate

NAME_PATTERN = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
AxisRule = dict[str, Union[str, list[str]]]


def _version_names(value: dict[str, str]) -> dict[str, str]:
    bad = [name for name in value if not re.match(NAME_PATTERN, name)]
    if bad:
        raise ValueError(f"version names must be lowercase letters, digits and . _ - (not {', '.join(map(repr, bad))})")
    return value


#: name -> shell command that prints a version, run in a container of the built image (`stacks tags`, `stacks push`)
VersionProbes = Annotated[dict[str, str], AfterValidator(_version_names),
                          Field(json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN}})]
_VERSIONS_HELP = (
    "Versions read out of the built image: name -> shell command that prints the version (first line of stdout), "
    "run as the image's user, e.g. {python: \"python -c 'import platform; print(platform.python_version())'\"}. "
    "They are tag variables ({{ versions.python }}) and are checked against versions this declares in 'provides' "
    "(python=3.11 passes for 3.11.2) before `stacks push`."
)


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- stacks.yaml -------------------------------------------------------------


class Bootstrap(Strict):
    """A base made locally from a Debian/Ubuntu archive, no registry needed."""

    tool: Literal["mmdebstrap"] = "mmdebstrap"
    suite: str = Field(description="Release to bootstrap, e.g. bookworm; may use axis values: '{{ os }}'.")
    variant: str = Field("minbase", description="mmdebstrap --variant.")
    mirror: str | None = Field(None, description="Archive URL; default is the tool's own default mirror.")
    components: list[str] = Field(default_factory=lambda: ["main"])
    packages: list[str] = Field(default_factory=list, description="Extra packages (--include).")


class Base(Strict):
    """Where a root image comes from: pulled from a registry or bootstrapped."""

    pull: str | None = Field(None, description="Image reference to pull, e.g. ubuntu:24.04; may use axis values.")
    bootstrap: Bootstrap | None = None
    provides: list[str] = Field(default_factory=list, description="Capabilities the base already has, e.g. cuda=12.4.")
    platforms: list[str] = Field(default_factory=lambda: ["linux/amd64", "linux/arm64"])
    verified: bool = Field(True, description="False when this project's CI cannot obtain the base (e.g. a registry it cannot reach); `--only-verified` then leaves its images out.")
    unverified_reason: str | None = Field(None, description="Why the base is not verified; shown by `stacks plan`.")
    versions: VersionProbes = Field(default_factory=dict, description=_VERSIONS_HELP)

    @model_validator(mode="after")
    def _one_source(self) -> "Base":
        if (self.pull is None) == (self.bootstrap is None):
            raise ValueError("a base needs exactly one of 'pull' or 'bootstrap'")
        return self


class FragmentUse(Strict):
    """A fragment applied to an image, with parameters and an optional condition."""

    use: str = Field(description="Fragment name (a folder under a fragments directory).")
    params: dict[str, Any] = Field(default_factory=dict, description="Values for the fragment's declared params; strings may use axis values.")
    when: AxisRule = Field(default_factory=dict, description="Apply only to variants whose axes match, e.g. {accel: cuda}.")


class ImageDef(Strict):
    """An image: a parent (another image or a base) plus an ordered list of fragments."""

    description: str = ""
    parent: str | None = Field(None, description="Another image of this file.")
    base: str | None = Field(None, description="A key of 'bases'.")
    repo: str | None = Field(None, pattern=NAME_PATTERN, description="Repository name; defaults to the image name.")
    name: str | None = Field(None, description="Template for variant names; default '{{ image }}-{{ variant }}'.")
    axes: list[str] = Field(default_factory=list, description="Axes this image adds to its parent's.")
    exclude: list[AxisRule] = Field(default_factory=list)
    include: list[AxisRule] = Field(default_factory=list)
    fragments: list[Union[str, FragmentUse]] = Field(default_factory=list)
    build_args: dict[str, str] = Field(default_factory=dict, description="Build arguments; part of the content hash.")
    weight: int | None = Field(None, ge=1, description="Build cost in --jobs slots; default: the heaviest fragment's weight.")
    push: bool = Field(True, description="False for intermediate images that are built but never published.")
    size_budget: str | None = Field(
        None, pattern=r"^\d+(\.\d+)?\s*[kMG]B$",
        description="Largest acceptable uncompressed size, e.g. 600MB or 2.5GB (decimal units, as `docker images` prints); recorded in the build report, and `stacks test` fails an image over it.",
    )

    @model_validator(mode="after")
    def _one_parent(self) -> "ImageDef":
        if (self.parent is None) == (self.base is None):
            raise ValueError("an image needs exactly one of 'parent' or 'base'")
        return self

    def uses(self) -> list[FragmentUse]:
        return [FragmentUse(use=f) if isinstance(f, str) else f for f in self.fragments]


class Registry(Strict):
    host: str = Field("docker.io", description="Registry host[:port].")
    namespace: str = Field("", description="Organisation or user; may be empty for a private registry.")


class ImageLabels(Strict):
    """OCI annotations every built image carries (org.opencontainers.image.*); empty ones are left out."""

    source: str | None = Field(None, description="URL of the source repository; default: the git remote 'origin' of the folder of stacks.yaml.")
    url: str | None = Field(None, description="Where people find information about the images.")
    documentation: str | None = Field(None, description="URL of the images' documentation.")
    licenses: str | None = Field(None, description="SPDX license expression, e.g. BSD-3-Clause.")
    vendor: str | None = Field(None, description="Who distributes the images.")
    authors: str | None = Field(None, description="Contact people or organisation.")


class BuildSettings(Strict):
    """Per-site build environment: never part of an image's content hash."""

    ca_certificates: list[str] = Field(
        default_factory=list,
        description="Extra CA certificate files (PEM) that builds trust for pip, npm, Python and curl; mounted as a build secret, never stored in a layer.",
    )
    pip_index_url: str | None = Field(None, description="PyPI mirror (PIP_INDEX_URL during builds).")
    npm_registry: str | None = Field(None, description="npm registry mirror (NPM_CONFIG_REGISTRY during builds).")
    apt_mirror: str | None = Field(None, description="Debian/Ubuntu archive mirror for bootstrapped bases.")
    jobs: int | None = Field(None, ge=1, description="Parallel build slots; default: number of CPUs.")


DEFAULT_TAGS = (
    "{{ variant }}",
    "{{ variant }}-{{ date }}",
    "{{ variant }}-{{ git_sha }}",
    "{% for name, version in versions.items() %}{{ variant }}-{{ name }}-{{ version }} {% endfor %}",
)


class Settings(Strict):
    fragments: list[str] = Field(default_factory=lambda: ["fragments"], description="Fragment directories, relative to stacks.yaml.")
    local_prefix: str = Field("stacks", pattern=NAME_PATTERN, description="Repository prefix of locally built images.")
    registry: Registry = Field(default_factory=Registry)
    tags: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TAGS),
        description="Tag templates per image; variables: image, variant, axes and axis names, hash, default, and, read "
                    "from the built image, versions (a map), date (the build date, YYYY-MM-DD) and git_sha (the commit "
                    "that built it). A template may give several tags separated by spaces; leading and trailing '-' "
                    "and '.' are dropped; templates reading hash or git_sha give immutable tags, pushed first.",
    )
    latest: bool = Field(True, description="Also tag the default variant (all axes at their first value) 'latest'.")
    labels: ImageLabels = Field(default_factory=ImageLabels, description="OCI labels of every image (title, description, created, revision and version are set by stacks).")
    build: BuildSettings = Field(default_factory=BuildSettings)
    cache: str | None = Field(None, description="Registry cache HOST[:PORT]/REPOSITORY: built images and their test records "
                                                "by content hash, so unchanged images are neither rebuilt nor retested "
                                                "(docs/cache.md). Also: --cache, STACKS_CACHE.")


class HubAuthenticator(Strict):
    """Who may log in to the Hub. Client id and secret are never written here: the Hub reads them from
    OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET when it starts (the dummy kind: JUPYTERHUB_DUMMY_PASSWORD)."""

    kind: Literal["github", "gitlab", "generic", "dummy"] = Field(
        "github", description="github, gitlab, generic (any OAuth2/OpenID Connect provider), or dummy: one shared password, for tests only.")
    allowed_users: list[str] = Field(default_factory=list, description="Accounts that may log in (besides admins and the groups/organisations below).")
    allow_all: bool = Field(False, description="Let every account the provider accepts log in (a public GitHub login means anyone with a GitHub account).")
    organizations: list[str] = Field(default_factory=list, description="github: members of these organisations (or org:team) may log in.")
    groups: list[str] = Field(default_factory=list, description="gitlab: members of these groups; generic: users whose groups claim (groups_key) has one of these.")
    url: str | None = Field(None, description="gitlab: the GitLab instance, e.g. https://gitlab.example.org (default gitlab.com).")
    authorize_url: str | None = Field(None, description="generic: the provider's authorization endpoint.")
    token_url: str | None = Field(None, description="generic: the provider's token endpoint.")
    userdata_url: str | None = Field(None, description="generic: the provider's userinfo endpoint.")
    username_claim: str = Field("preferred_username", description="generic: the userinfo field that becomes the JupyterHub user name.")
    groups_key: str | None = Field(None, description="generic: where the groups are in the auth state, e.g. oauth_user.groups.")
    scope: list[str] = Field(default_factory=list, description="OAuth scopes to request; default: the authenticator's (generic: openid profile email).")
    login_service: str | None = Field(None, description="Name on the login button, e.g. 'Example SSO'.")

    @model_validator(mode="after")
    def _generic_endpoints(self) -> "HubAuthenticator":
        missing = [k for k in ("authorize_url", "token_url", "userdata_url") if self.kind == "generic" and not getattr(self, k)]
        if missing:
            raise ValueError(f"the generic authenticator needs {', '.join(missing)}")
        return self


class HubGpu(Strict):
    """GPUs for the users' containers, as a Docker device request (`docker run --gpus`); needs the NVIDIA
    container toolkit on the host."""

    count: Union[int, Literal["all"]] = Field("all", description="How many GPUs each container gets, or all.")
    capabilities: list[str] = Field(default_factory=lambda: ["gpu"], description="Device capabilities requested, e.g. [gpu] or [gpu, compute, utility].")
    driver: str = Field("", description="Device driver, e.g. nvidia; empty: the engine picks one that has the capabilities.")
    images: list[str] = Field(default_factory=list, description="Offered images (definitions or variant names) that get the GPUs; empty: all of them.")


class HubSettings(Strict):
    """A multi-user JupyterHub (DockerSpawner) over the built images: `stacks hub-config` turns this into a
    jupyterhub_config.py and a compose file."""

    image: str = Field("hub", description="The image (definition or variant name) that runs the Hub; its default variant if a definition.")
    offer: list[str] = Field(
        default_factory=list,
        description="Images users choose from (definitions or variant names); default: every built image with jupyterhub-singleuser in its chain.")
    default: str | None = Field(None, description="The variant preselected in the list; default: the first offered.")
    name: str = Field("jupyterhub", pattern=NAME_PATTERN, description="The Hub's container name (its host name on the network); its state volume is <name>-data.")
    network: str = Field("jupyterhub", pattern=NAME_PATTERN, description="Docker network shared by the Hub and the users' containers.")
    prefix: str = Field("jupyter", pattern=NAME_PATTERN, description="Users' containers are named <prefix>-<username>.")
    volume: str = Field("jupyterhub-user-{username}", description="Name of each user's volume; {username} is the (escaped) user name.")
    mount: str = Field("/home/jovyan/work", pattern=r"^/", description="Where the user's volume is mounted; the server opens there.")
    address: str = Field("0.0.0.0", description="Host address the Hub's port is published on (127.0.0.1 behind a reverse proxy).")
    port: int = Field(8000, ge=1, le=65535, description="Host port of the Hub.")
    public_url: str | None = Field(None, description="The URL users open, e.g. https://hub.example.org; OAuth callbacks go to <public_url>/hub/oauth_callback.")
    admins: list[str] = Field(default_factory=list, description="Users with admin rights in the Hub (they may always log in).")
    authenticator: HubAuthenticator = Field(default_factory=HubAuthenticator)
    gpu: HubGpu | None = Field(None, description="Give the users' containers GPUs; absent: none.")
    mem_limit: str | None = Field(None, pattern=r"^\d+(\.\d+)?[KMGT]?$", description="Memory limit per user container, e.g. 4G.")
    cpu_limit: float | None = Field(None, gt=0, description="CPU limit per user container, in CPUs.")
    keep_containers: bool = Field(False, description="Keep a stopped user's container (restarted next time) instead of removing it; the volume is kept either way.")


AxisValues = dict[str, Union[dict[str, Any], None]]


class StacksFile(Strict):
    """The whole of stacks.yaml."""

    version: Literal[1] = 1
    settings: Settings = Field(default_factory=Settings)
    axes: dict[str, Union[list[str], AxisValues]] = Field(
        default_factory=dict,
        description="Matrix axes: name -> values (list) or value -> variables. The first value is the default.",
    )
    bases: dict[str, Base] = Field(default_factory=dict)
    images: dict[str, ImageDef]
    hub: HubSettings | None = Field(None, description="Multi-user JupyterHub over the built images (`stacks hub-config`).")

    @field_validator("images", "bases", "axes")
    @classmethod
    def _names(cls, value: dict) -> dict:
        import re

        bad = [k for k in value if not re.match(NAME_PATTERN, str(k))]
        if bad:
            raise ValueError(f"names must be lowercase letters, digits and . _ - (not {', '.join(map(repr, bad))})")
        return value


# --- fragment.yaml -----------------------------------------------------------


ParamType = Literal["string", "integer", "number", "boolean", "list"]


class ParamSpec(Strict):
    type: ParamType = "string"
    default: Any = Field(None, description="Omit to make the parameter required.")
    required: bool = False
    choices: list[Any] | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _required_without_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default" not in data:
            data = {**data, "required": True}
        return data

    def typed(self, value: Any, convert: bool = True) -> Any:
        """`value` checked against the type and choices (ValueError if it fits neither).

        With `convert`, text rendered from a template is read as the declared
        type first ("3" is 3 for an integer); a default written in
        fragment.yaml is checked as YAML read it (`convert=False`).
        """
        kind = self.type
        if convert:
            value = _converted(value, kind)
        valid = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "list": isinstance(value, list),
        }[kind]
        if not valid:
            hint = " (quote it)" if kind == "string" else ""
            raise ValueError(f"expected {'an' if kind == 'integer' else 'a'} {kind}{hint}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{value!r} is not one of {self.choices}")
        return value


def _converted(value: Any, kind: str) -> Any:
    if kind == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if kind == "number" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


class KernelSpec(Strict):
    name: str = Field(description="Kernelspec name it registers (jupyter kernelspec list).")
    language: str
    snippet: str = Field(description="Code that prints something.")
    expect: str = Field(description="Regular expression the output must match.")
    timeout: int = Field(120, ge=1)


class FileExpect(Strict):
    """What a path in the image must be (checked with testinfra's `host.file`)."""

    path: str
    exists: bool = Field(True, description="False: the path must not exist.")
    type: Literal["file", "directory", "symlink"] | None = None
    mode: str | None = Field(None, pattern=r"^0?[0-7]{3,4}$", description="Permission bits in octal, e.g. \"0755\" (quote it).")
    owner: str | None = Field(None, description="Owning user name.")
    group: str | None = Field(None, description="Owning group name.")
    contains: str | None = Field(None, description="Regular expression searched in the file's text.")
    linked_to: str | None = Field(None, description="For a symlink: the path it resolves to.")


class AccountExpect(Strict):
    """A user account of the image (testinfra's `host.user`)."""

    name: str
    uid: Union[int, str, None] = Field(None, description="A number, or a template such as \"{{ uid }}\".")
    gid: Union[int, str, None] = Field(None, description="A number, or a template such as \"{{ gid }}\".")
    group: str | None = Field(None, description="Primary group name.")
    groups: list[str] = Field(default_factory=list, description="Groups the account must be a member of.")
    home: str | None = None
    shell: str | None = None


class PackageExpect(Strict):
    """An installed package: a distribution package (dpkg/rpm/apk through testinfra) or a pip distribution."""

    name: str
    manager: Literal["system", "pip"] = Field("system", description="system: the distribution's package manager; pip: `pip` on PATH.")
    version: str | None = Field(None, description="Regular expression searched in the installed version, e.g. \"^{{ version }}$\".")


CHECK_KINDS = ("run", "file", "account", "package", "env", "label")


class Check(Strict):
    """One promise of a fragment, checked in a container of every image that inherits it.

    Exactly one kind: `run` (a shell command and a regex on its output), `file`,
    `account`, `package`, `env` or `label`. Strings may use the fragment's
    params, e.g. `{{ user }}`.
    """

    name: str
    run: str | None = Field(None, description="Shell command run in a container of the image.")
    expect: str = Field("", description="For run: regular expression searched in the command's output (stdout, then stderr).")
    status: int = Field(0, description="For run: the exit status the command must end with.")
    timeout: int = Field(120, ge=1, description="For run: seconds before the command is stopped and the check fails.")
    file: FileExpect | None = None
    account: AccountExpect | None = None
    package: PackageExpect | None = None
    env: dict[str, str] | None = Field(None, description="Environment variables of the image: name -> regular expression.")
    label: dict[str, str] | None = Field(None, description="Image labels: name -> regular expression.")
    user: str | None = Field(None, description="Run as this user instead of the image's default.")
    needs: list[str] = Field(default_factory=list, description="Hardware it needs, e.g. [gpu]; not run elsewhere.")

    @model_validator(mode="after")
    def _one_kind(self) -> "Check":
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a check needs exactly one of {', '.join(CHECK_KINDS)} (got {', '.join(kinds) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)


class FragmentFile(Strict):
    """The whole of a fragment.yaml."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str
    version: str | None = Field(None, description="Pinned version of what it installs.")
    provides: list[str] = Field(default_factory=list)
    requires: list[str] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    platforms: list[str] | None = None
    weight: int = Field(1, ge=1)
    verified: bool = Field(False, description="True when CI builds and smoke-tests it.")
    unverified_reason: str | None = None
    kernel: KernelSpec | None = None
    checks: list[Check] = Field(default_factory=list)
    versions: VersionProbes = Field(default_factory=dict, description=_VERSIONS_HELP + " Commands may use the params.")


# --- turning pydantic errors into located problems ---------------------------


def validate(model: type[Strict], data: MarkedDict, file: Path) -> tuple[Any, list[Problem]]:
    """Validate `data`; return (model or None, problems with file positions)."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = _deepest(exc.errors())
        return None, [_problem(error, model, data, file) for error in errors]


def _deepest(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop an error whose path leads to another error's path: for a value that fits no branch
    of a union, pydantic reports each branch; the deeper report is the one that helps."""
    paths = [tuple(p for p in e["loc"] if not _is_union_branch(p)) for e in errors]
    return [
        error for error, path in zip(errors, paths)
        if not any(len(other) > len(path) and other[: len(path)] == path for other in paths)
    ]


def _problem(error: ErrorDetails, model: type[BaseModel], data: MarkedDict, file: Path) -> Problem:
    path = [p for p in error["loc"] if not _is_union_branch(p)]
    kind = error["type"]
    dotted = ".".join(str(p) for p in path) or "(top level)"
    if kind == "extra_forbidden":
        unknown = path[-1]
        known = _known_keys(model, path[:-1], data)
        return Problem(
            f"unknown key '{unknown}' in {'.'.join(map(str, path[:-1])) or 'the top level'}",
            locate(data, path, file, key=True),
            did_you_mean(str(unknown), known) or (f"known keys: {', '.join(sorted(known))}" if known else None),
        )
    if kind == "missing":
        return Problem(f"missing required key '{path[-1]}'", locate(data, path[:-1], file))
    message = error["msg"].removeprefix("Value error, ")
    hint = None
    if kind == "string_type" and isinstance(error.get("input"), (int, float)) and not isinstance(error.get("input"), bool):
        hint = f"YAML read this as the number {error['input']}; put it in quotes (e.g. \"3.10\") to keep it as text"
    return Problem(f"{dotted}: {message}", locate(data, path, file), hint)


def _is_union_branch(part: Any) -> bool:
    """Pydantic names union branches in paths ('str', 'FragmentUse', 'list[str]'); users never wrote those."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in {"str", "int", "bool", "float"})


def _known_keys(model: type[BaseModel], path: list, data: Any) -> set[str]:
    """The field names of the model found at `path`, for did-you-mean hints."""
    current: Any = model
    for part in path:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is not None:  # otherwise `part` is a key of a dict of models
            current = _inner_model(field.annotation)
    return set(current.model_fields) if _is_model(current) else set()


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _inner_model(annotation: Any) -> Any:
    """The first BaseModel class inside an annotation like dict[str, X] or list[str | X]."""
    if _is_model(annotation):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
