"""The docker-stacks start contract of the reference images, case by case, on the real engine.

User options: who the container runs as and what start.sh changes when it
starts as root (rename, UID/GID remap, the root triplet, sudo, chown, hooks,
umask, variables to unset...). Every case runs the image as users do,
`docker run IMAGE COMMAND`, never prefixed with start.sh: the entry point
must run start.sh for any command (and only once when the command is itself
a start script).
Health: the image's HEALTHCHECK turns healthy however the server is started
(token, password, port, base URL, user switches, single-user under a Hub)
and unhealthy when no server answers; each healthy server is also asked over
HTTP whether it enforces what it was started with.

Every case is its own container; a module fixture runs all cases of a kind
side by side, and one test per case reads its outcome.
"""
from __future__ import annotations

import os
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from builder.check.probes import HUB_STUB
from builder.check.server import HUB_PORT, HUB_USER, hub_environment

pytestmark = pytest.mark.integration
LABEL = "io.stacks.test"
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def images(reference: dict) -> dict[str, str]:
    return {"lab": reference["lab-bookworm"]["ref"], "singleuser": reference["singleuser-bookworm"]["ref"],
            "minimal": reference["minimal-bookworm"]["ref"]}


# --- user options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserCase:
    id: str
    script: str  # bash: the container's command is `bash -c script` (or `raw`)
    expect: tuple[str, ...]  # regexes the command's stdout must match
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    hooks: dict[str, str] = field(default_factory=dict)  # "start-notebook.d/10-x.sh": text
    log: tuple[str, ...] = ()  # regexes start.sh's stderr must match
    no_log: tuple[str, ...] = ()  # regexes it must not match
    mount: bool = False  # a host folder at ~/work; `host_owner` is checked after
    host_owner: tuple[int, int] | None = None
    raw: list[str] | None = None  # a command instead of bash -c script
    restarts: int = 0
    group_add: tuple[str, ...] = ()
    code: int = 0  # the container's exit status
    log_count: tuple[tuple[str, int], ...] = ()  # (regex, how many times it is in start.sh's log)


ROOT = "root"
USER_CASES = [
    UserCase("default-user-is-jovyan", "id", (r"uid=1000\(jovyan\) gid=100\(users\)",), raw=["id"]),
    UserCase("default-home-and-workdir", 'echo "$HOME $(pwd)"', (r"^/home/jovyan /home/jovyan$",)),
    UserCase("root-drops-to-nb-user", "id -u; id -un", (r"^1000\njovyan$",), user=ROOT,
             log=(r"Running as jovyan \(uid 1000, gid 100\): bash -c",)),
    # The example: any command, started as root with GRANT_SUDO, runs as jovyan (with sudo)
    UserCase("any-command-as-root-drops-to-jovyan", "", (r"^uid=1000\(jovyan\) gid=100\(users\)",), user=ROOT,
             env={"GRANT_SUDO": "yes"}, raw=["id"], log=(r"^Entered start\.sh with args: id$", r"Running as jovyan .*: id$")),
    UserCase("grant-sudo-with-user-root-any-command", "", (r"^0$",), user=ROOT, env={"GRANT_SUDO": "yes"},
             raw=["sudo", "-n", "id", "-u"]),
    UserCase("log-lines-of-a-default-start", "true", (), log=(r"^Entered start\.sh with args: bash -c true$",
             r"^Running hooks in: /usr/local/bin/start-notebook\.d as uid: 1000 gid: 100$",
             r"^Done running hooks in: /usr/local/bin/before-notebook\.d$", r"^Executing the command: bash -c true$")),
    UserCase("start-sh-in-the-command-runs-once", "", (r"^once$",), user=ROOT, env={"NB_UID": "1010"},
             raw=["start.sh", "bash", "-c", "echo once"],
             log=(r"WARNING: start\.sh already ran as the entry point",),
             log_count=((r"Entered start\.sh with args", 1), (r"Setting the uid of jovyan to 1010", 1))),
    UserCase("hooks-run-once-through-start-notebook", "", (r"^4\.\d+\.\d+$",), raw=["start-notebook.py", "--version"],
             hooks={"start-notebook.d/10-count.sh": "echo hook-ran >&2\n"},
             log_count=((r"^hook-ran$", 1), (r"Entered start\.sh", 1))),
    UserCase("nb-user-rename", 'id -un; echo "$HOME"; pwd; touch ~/made && echo writable', (r"^alice\n/home/alice\n/home/alice\nwritable$",),
             env={"NB_USER": "alice"}, user=ROOT, log=(r"Renaming user jovyan to alice",)),
    UserCase("nb-user-rename-chown-home", "stat -c %U /home/alice/", (r"^alice$",),
             env={"NB_USER": "alice", "CHOWN_HOME": "yes"}, user=ROOT),
    UserCase("nb-user-rename-survives-restart", "id -un", (r"^alice$",), env={"NB_USER": "alice"}, user=ROOT, restarts=1),
    UserCase("nb-uid-change", "id -u; touch ~/made && echo writable", (r"^1010\nwritable$",), env={"NB_UID": "1010"}, user=ROOT,
             log=(r"Setting the uid of jovyan to 1010",)),
    UserCase("nb-gid-change-keeps-users-group", "id -g; id -G", (r"^110\n", r"\b100\b"), env={"NB_GID": "110"}, user=ROOT),
    UserCase("nb-group-names-a-new-gid", "id -gn", (r"^science$",), env={"NB_GID": "2222", "NB_GROUP": "science"}, user=ROOT),
    UserCase("labuid-labgid-aliases", 'echo "$(id -u):$(id -g)"', (r"^1111:2222$",), env={"LABUID": "1111", "LABGID": "2222"}, user=ROOT),
    UserCase("bind-mount-belongs-to-nb-uid-gid", 'touch ~/work/made-here && echo "$(id -u):$(id -g)"', (r"^1234:2345$",),
             env={"NB_UID": "1234", "NB_GID": "2345"}, user=ROOT, mount=True, host_owner=(1234, 2345)),
    UserCase("chown-home-recursive", "stat -c %u ~ ~/.bashrc", (r"^1234\n1234$",),
             env={"NB_UID": "1234", "CHOWN_HOME": "yes", "CHOWN_HOME_OPTS": "-R"}, user=ROOT),
    UserCase("chown-extra", "stat -c %u /opt/venv/share /opt/venv/share/jupyter /usr/local/share", (r"^1234\n1234\n1234$",),
             env={"NB_UID": "1234", "CHOWN_EXTRA": "/opt/venv/share,/usr/local/share", "CHOWN_EXTRA_OPTS": "-R"}, user=ROOT),
    UserCase("grant-sudo", "sudo -n id -u", (r"^0$",), env={"GRANT_SUDO": "yes"}, user=ROOT, log=(r"Granting jovyan passwordless sudo",)),
    UserCase("sudo-closed-without-grant", "sudo -n true 2>&1; echo status=$?", (r"status=1$",), user=ROOT),
    UserCase("grant-sudo-ignored-without-root", "sudo -n true 2>&1; echo status=$?", (r"status=1$",),
             env={"GRANT_SUDO": "yes"}, log=(r"WARNING: GRANT_SUDO is ignored",)),
    UserCase("nb-uid-ignored-without-root", "id -u", (r"^1000$",), env={"NB_UID": "1234"},
             log=(r"WARNING: NB_UID=1234 is ignored",)),
    UserCase("root-only-when-asked", "id -u", (r"^0$",), env={"NB_UID": "0"}, user=ROOT, log=(r"Running as root \(NB_UID=0\)",)),
    UserCase("root-triplet", 'id; echo "$HOME"; pwd; touch ~/made && echo writable', (r"^uid=0\(root\) gid=0\(root\)", r"^/home/root\n/home/root\nwritable$"),
             env={"NB_USER": "root", "NB_UID": "0", "NB_GID": "0"}, user=ROOT, log=(r"Running as root \(NB_UID=0\)",)),
    UserCase("root-triplet-survives-restart", 'echo "$(id -un) $HOME"', (r"^root /home/root$",),
             env={"NB_USER": "root", "NB_UID": "0", "NB_GID": "0"}, user=ROOT, restarts=1),
    # OpenShift style: an arbitrary uid in the root group (which may write /etc/passwd), plus the notebook group
    UserCase("arbitrary-uid-gets-a-name", "id -un; touch ~/made && echo writable", (r"^jovyan\nwritable$",), user="5000",
             group_add=("100",),
             log=(r"Added jovyan \(uid 5000, gid 0\) to /etc/passwd",)),
    # docker-stacks: a uid without a name is still called jovyan; the image's own entry steps aside
    UserCase("user-1010-is-still-named-jovyan", 'id -un; echo "$HOME"; getent passwd 1000 | cut -d: -f1', (r"^jovyan\n/home/jovyan\nnayvoj$",),
             user="1010"),
    UserCase("work-folder-exists", "stat -c '%U %F' ~/work", (r"^jovyan directory$",)),
    UserCase("nb-umask", "touch ~/masked && stat -c %a ~/masked", (r"^664$",), env={"NB_UMASK": "002"}),
    UserCase("start-notebook-d-hook-is-sourced", 'echo "hooked=$HOOKED"', (r"^hook ran as 1000\nhooked=yes$",),
             hooks={"start-notebook.d/10-export.sh": 'echo "hook ran as $(id -u)"\nexport HOOKED=yes\n'},
             log=(r"Sourcing shell script: /usr/local/bin/start-notebook.d/10-export.sh",)),
    UserCase("executed-hook-cannot-change-the-environment", 'echo "var=${FROM_EXEC:-unset}"', (r"^var=unset$",),
             hooks={"start-notebook.d/10-exec": "#!/bin/bash\nexport FROM_EXEC=yes\n"},
             log=(r"Running executable: /usr/local/bin/start-notebook.d/10-exec",)),
    UserCase("hooks-run-in-order-start-then-before", "cat /tmp/order", (r"^10-a.sh 1000\n20-b 1000\n30-c.sh 1000\n10-d.sh 0\n20-e 0$",),
             user=ROOT, hooks={"start-notebook.d/10-a.sh": "echo 10-a.sh $NB_UID >> /tmp/order\n",
                               "start-notebook.d/20-b": "#!/bin/bash\necho 20-b $NB_UID >> /tmp/order\n",
                               "start-notebook.d/30-c.sh": "echo 30-c.sh $NB_UID >> /tmp/order\n",
                               "before-notebook.d/10-d.sh": "echo 10-d.sh $(id -u) >> /tmp/order\n",
                               "before-notebook.d/20-e": "#!/bin/bash\necho 20-e $(id -u) >> /tmp/order\n"}),
    UserCase("before-notebook-d-hook-runs-as-root", "cat /tmp/before-hook", (r"^uid 0 NB_UID 1234$",),
             hooks={"before-notebook.d/20-exec": '#!/bin/bash\necho "uid $(id -u) NB_UID $NB_UID" > /tmp/before-hook\n'},
             env={"NB_UID": "1234"}, user=ROOT, log=(r"Running executable: /usr/local/bin/before-notebook.d/20-exec",)),
    UserCase("failing-hook-is-logged-and-start-goes-on", "echo started", (r"^started$",),
             hooks={"before-notebook.d/10-fails": "#!/bin/bash\nexit 7\n", "start-notebook.d/10-fails.sh": "false\n"},
             log=(r"WARNING: /usr/local/bin/before-notebook.d/10-fails has failed with exit status 7, continuing execution",
                  r"WARNING: /usr/local/bin/start-notebook.d/10-fails.sh has failed with exit status 1, continuing execution")),
    UserCase("sourced-hook-that-exits-stops-the-start", "echo started", (r"\A\Z",), code=3,
             hooks={"before-notebook.d/10-stop.sh": "exit 3\n"}),
    UserCase("non-executable-hook-is-ignored", "echo started", (r"^started$",),
             hooks={"before-notebook.d/README": "not a hook\n"}, log=(r"Ignoring non-executable: /usr/local/bin/before-notebook.d/README",)),
    UserCase("env-vars-to-unset-as-user", 'cat /tmp/seen; echo "${SECRET_A:-gone} ${SECRET_B:-gone} ${JUPYTER_ENV_VARS_TO_UNSET:-gone} $KEPT"',
             (r"^hook saw a1\ngone gone gone kept$",),
             env={"SECRET_A": "a1", "SECRET_B": "b2", "KEPT": "kept", "JUPYTER_ENV_VARS_TO_UNSET": "SECRET_A,SECRET_B"},
             hooks={"before-notebook.d/10-see.sh": 'echo "hook saw $SECRET_A" > /tmp/seen\n'},
             log=(r"Unset SECRET_A due to JUPYTER_ENV_VARS_TO_UNSET",)),
    UserCase("env-vars-to-unset-as-root", 'echo "$(id -u) ${SECRET_A:-gone} ${SECRET_B:-gone}"', (r"^1000 gone gone$",), user=ROOT,
             env={"SECRET_A": "a1", "SECRET_B": "b2", "JUPYTER_ENV_VARS_TO_UNSET": "SECRET_A,SECRET_B"}),
    UserCase("docker-stacks-jupyter-cmd", "", (r"^2\.\d+\.\d+$",), env={"DOCKER_STACKS_JUPYTER_CMD": "server"},
             raw=["start-notebook.py", "--version"]),
    UserCase("quiet-start", "id -u", (r"^1234$",), env={"NB_UID": "1234", "JUPYTER_DOCKER_STACKS_QUIET": "1"}, user=ROOT,
             no_log=(r"Entered start\.sh", r"Running as", r"Setting the uid", r"Running hooks")),
    UserCase("quiet-start-keeps-warnings", "id -u", (r"^1000$",), env={"GRANT_SUDO": "yes", "JUPYTER_DOCKER_STACKS_QUIET": "1"},
             log=(r"^WARNING: GRANT_SUDO is ignored",), no_log=(r"Entered start\.sh", r"Executing the command")),
]


@dataclass
class UserOutcome:
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    host_owner: tuple[int, int] | None = None
    error: str = ""


def _run_user_case(client, image: str, case: UserCase, folder: Path) -> UserOutcome:
    outcome = UserOutcome()
    volumes: dict[str, dict[str, str]] = {}
    for hook, text in case.hooks.items():
        target = folder / "hooks" / hook
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755 if not hook.endswith("README") else 0o644)
        target.parent.chmod(0o755)
        volumes[str(target.parent)] = {"bind": f"/usr/local/bin/{target.parent.name}", "mode": "ro"}
    if case.mount:
        work = folder / "work"
        work.mkdir()
        os.chmod(work, 0o777)
        volumes[str(work)] = {"bind": "/home/jovyan/work", "mode": "rw"}
    command = case.raw or ["bash", "-c", case.script]  # as users run it: no start.sh in front
    container = client.containers.run(image, command, detach=True, user=case.user or "", environment=case.env,
                                      volumes=volumes, labels={LABEL: case.id}, group_add=list(case.group_add) or None)
    try:
        for _ in range(case.restarts + 1):
            if _ > 0:
                container.start()
            outcome.code = container.wait(timeout=120)["StatusCode"]
        outcome.stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        outcome.stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
        if case.restarts:  # each start printed once; the last start is what counts
            outcome.stdout = outcome.stdout.strip().splitlines()[-1] if outcome.stdout.strip() else ""
        if case.host_owner:
            made = (folder / "work" / "made-here").stat()
            outcome.host_owner = (made.st_uid, made.st_gid)
    except Exception as exc:  # noqa: BLE001 - reported by the case's test
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        container.remove(force=True)
    return outcome


@pytest.fixture(scope="module")
def user_outcomes(images, client, tmp_path_factory) -> dict[str, UserOutcome]:
    root = tmp_path_factory.mktemp("user-cases")

    def one(case: UserCase) -> tuple[str, UserOutcome]:
        folder = root / case.id
        folder.mkdir()
        return case.id, _run_user_case(client, images["lab"], case, folder)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, USER_CASES))


@pytest.mark.parametrize("case", USER_CASES, ids=[c.id for c in USER_CASES])
def test_user_option(case: UserCase, user_outcomes: dict[str, UserOutcome]) -> None:
    outcome = user_outcomes[case.id]
    assert outcome.error == "" and outcome.code == case.code, f"{outcome.error} exit {outcome.code}\n{outcome.stdout}\n{outcome.stderr}"
    for pattern in case.expect:
        assert re.search(pattern, outcome.stdout.strip(), re.MULTILINE), f"/{pattern}/ not in stdout:\n{outcome.stdout}\n{outcome.stderr}"
    for pattern in case.log:
        assert re.search(pattern, outcome.stderr, re.MULTILINE), f"/{pattern}/ not in start.sh's log:\n{outcome.stderr}"
    for pattern in case.no_log:
        assert not re.search(pattern, outcome.stderr, re.MULTILINE), f"/{pattern}/ found in the log:\n{outcome.stderr}"
    for pattern, times in case.log_count:
        found = len(re.findall(pattern, outcome.stderr, re.MULTILINE))
        assert found == times, f"/{pattern}/ {found} times in the log, not {times}:\n{outcome.stderr}"
    if case.host_owner:
        assert outcome.host_owner == case.host_owner


# --- health check and server ----------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    path: str
    status: int
    token: str | None = None


@dataclass(frozen=True)
class HealthCase:
    id: str
    env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    user: str | None = None
    port: int = 8888
    image: str = "lab"
    expect: str = "healthy"
    probes: tuple[Probe, ...] = ()
    login: str | None = None  # a password that must log in (and a wrong one must not)
    own_timing: bool = False  # the image's HEALTHCHECK timings, not the 1 s test override
    hub: bool = False  # run the stand-in Hub in the container
    then: str | None = None  # a shell command run (as root) once healthy; the case then expects unhealthy
    group_add: tuple[str, ...] = ()
    scheme: str = "http"
    absent: str | None = None  # a value no server process may have in its environment


TOKEN = "t0k3n"
HUB_TOKEN = secrets.token_hex(8)
PREFIX = f"/user/{HUB_USER}/"
HEALTH_CASES = [
    HealthCase("default-with-the-image-timing", own_timing=True, probes=(Probe("api", 200),)),
    HealthCase("default", probes=(Probe("api", 200), Probe("api/kernelspecs", 403))),
    HealthCase("token", env={"JUPYTER_TOKEN": TOKEN},
               probes=(Probe("api/kernelspecs", 200, TOKEN), Probe("api/kernelspecs", 403), Probe("api/kernelspecs", 403, "wrong"))),
    HealthCase("password", env={"JUPYTER_PASSWORD": "s3cret-pw"}, login="s3cret-pw", probes=(Probe("api/kernelspecs", 403),)),
    HealthCase("password-alias-labpasswd", env={"LABPASSWD": "lab-pw"}, login="lab-pw"),
    HealthCase("password-alias-jupyterlab-pw", env={"JUPYTERLAB_PW": "pw-lab"}, login="pw-lab"),
    HealthCase("password-and-token", env={"JUPYTER_PASSWORD": "both-pw", "JUPYTER_TOKEN": TOKEN}, login="both-pw",
               probes=(Probe("api/kernelspecs", 200, TOKEN),)),
    HealthCase("custom-jupyter-port", env={"JUPYTER_PORT": "8123", "JUPYTER_TOKEN": TOKEN}, port=8123,
               probes=(Probe("api/kernelspecs", 200, TOKEN),)),
    HealthCase("port-argument", command=("start-notebook.py", "--ServerApp.port=8124"), port=8124, probes=(Probe("api", 200),)),
    HealthCase("base-url-argument", command=("start-notebook.py", "--ServerApp.base_url=/base/"),
               env={"JUPYTER_TOKEN": TOKEN}, probes=(Probe("base/api/kernelspecs", 200, TOKEN), Probe("api", 404))),
    HealthCase("base-url-in-notebook-args", env={"NOTEBOOK_ARGS": "--ServerApp.base_url=/nb/"}, probes=(Probe("nb/api", 200),)),
    HealthCase("notebookapp-style-argument", command=("start-notebook.py", "--NotebookApp.base_url=/old/"),
               probes=(Probe("old/api", 200),)),
    HealthCase("port-base-url-and-token", command=("start-notebook.py", "--ServerApp.base_url=/a/b/"),
               env={"JUPYTER_PORT": "8765", "JUPYTER_TOKEN": TOKEN}, port=8765,
               probes=(Probe("a/b/api/kernelspecs", 200, TOKEN), Probe("a/b/api/kernelspecs", 403))),
    HealthCase("jupyter-server-command", env={"DOCKER_STACKS_JUPYTER_CMD": "server"}, probes=(Probe("api", 200),)),
    # The interface switch of docker-stacks where Notebook 7 is installed (the minimal image); every
    # server loads the enabled extensions, so /tree answering proves Notebook 7 is there.
    HealthCase("minimal-jupyter-lab-command", image="minimal", env={"DOCKER_STACKS_JUPYTER_CMD": "lab", "JUPYTER_TOKEN": TOKEN},
               probes=(Probe("lab", 200, TOKEN), Probe("api/kernelspecs", 403))),
    HealthCase("minimal-jupyter-notebook-command", image="minimal",
               env={"DOCKER_STACKS_JUPYTER_CMD": "notebook", "JUPYTER_TOKEN": TOKEN},
               probes=(Probe("tree", 200, TOKEN), Probe("api/kernelspecs", 200, TOKEN), Probe("api/kernelspecs", 403))),
    HealthCase("minimal-jupyter-server-command", image="minimal", env={"DOCKER_STACKS_JUPYTER_CMD": "server", "JUPYTER_TOKEN": TOKEN},
               probes=(Probe("api/kernelspecs", 200, TOKEN), Probe("api/kernelspecs", 403))),
    HealthCase("started-as-root", user="root", probes=(Probe("api", 200),)),
    HealthCase("root-renamed-user", user="root", env={"NB_USER": "alice"}, probes=(Probe("api", 200),)),
    HealthCase("root-changed-uid-gid", user="root", env={"NB_UID": "1010", "NB_GID": "110"}, probes=(Probe("api", 200),)),
    HealthCase("root-server-when-asked", user="root", env={"NB_UID": "0"}, command=("start-notebook.py", "--allow-root"),
               probes=(Probe("api", 200),)),
    HealthCase("arbitrary-uid", user="5000", group_add=("100",), probes=(Probe("api", 200),)),
    HealthCase("custom-runtime-dir", env={"JUPYTER_RUNTIME_DIR": "/tmp/runtime"}, probes=(Probe("api", 200),)),
    HealthCase("single-user-default-command", image="singleuser", hub=True,
               probes=(Probe(PREFIX[1:] + "api/kernelspecs", 200, HUB_TOKEN), Probe(PREFIX[1:] + "api/kernelspecs", 403))),
    HealthCase("single-user-through-start-notebook", image="singleuser", hub=True, command=("start-notebook.py",),
               probes=(Probe(PREFIX[1:] + "api/kernelspecs", 200, HUB_TOKEN),)),
    HealthCase("root-triplet-server", user="root", env={"NB_USER": "root", "NB_UID": "0", "NB_GID": "0"},
               command=("start-notebook.py", "--allow-root"), probes=(Probe("api", 200),)),
    HealthCase("gen-cert-serves-https", env={"GEN_CERT": "yes", "JUPYTER_TOKEN": TOKEN}, scheme="https",
               probes=(Probe("api/kernelspecs", 200, TOKEN), Probe("api/kernelspecs", 403))),
    HealthCase("env-vars-to-unset-leave-the-server", env={"MY_SECRET": "hush-4711", "JUPYTER_ENV_VARS_TO_UNSET": "MY_SECRET"},
               absent="hush-4711", probes=(Probe("api", 200),)),
    HealthCase("unhealthy-without-a-server", command=("sleep", "infinity"), expect="unhealthy"),
    HealthCase("unhealthy-after-the-server-stops", command=("bash", "-c", "jupyter lab & echo $! > /tmp/server.pid; wait; sleep infinity"),
               then="kill $(cat /tmp/server.pid)", expect="unhealthy"),
]


@dataclass
class HealthOutcome:
    status: str = "none"
    seconds: float = 0.0
    probes: list[tuple[Probe, int]] = field(default_factory=list)
    login: tuple[tuple[int, int], tuple[int, int]] | None = None
    password_in_environment: bool | None = None
    absent_in_environment: bool | None = None
    logs: str = ""
    error: str = ""


# Counts the server processes, and those with the password in their environment (the container's own
# environment has it, so tini and `docker exec` processes do; the server must not). Run as the server's
# user: without CAP_SYS_PTRACE even root cannot read another user's /proc/PID/environ.
SERVER_ENVIRON = """
import glob, os, sys
servers = hits = 0
for proc in glob.glob("/proc/[0-9]*"):
    if proc == "/proc/%d" % os.getpid():
        continue
    try:
        args = open(proc + "/cmdline", "rb").read().split(b"\\0")
        if any(a.rsplit(b"/", 1)[-1] in (b"jupyter-lab", b"jupyter-server", b"jupyterhub-singleuser") for a in args[:2]):
            environ = open(proc + "/environ", "rb").read()  # raises unless run as the server's user
            servers += 1
            hits += sys.argv[1].encode() in environ
    except OSError:
        pass
print(servers, hits)
"""


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = False  # GEN_CERT's certificate is self-signed
    return session


def _wait_health(container, wanted: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = "none"
    while time.monotonic() < deadline:
        container.reload()
        status = (container.attrs["State"].get("Health") or {}).get("Status", "none")
        if status == wanted or container.status == "exited":
            return status
        time.sleep(1)
    return status


def _login(base: str, password: str) -> tuple[int, int]:
    session = _session()
    session.get(base + "login", timeout=15)
    xsrf = session.cookies.get("_xsrf", "")
    posted = session.post(base + "login", data={"password": password, "_xsrf": xsrf}, allow_redirects=False, timeout=15)
    return posted.status_code, session.get(base + "api/kernelspecs", timeout=15).status_code


def _run_health_case(client, images: dict[str, str], case: HealthCase) -> HealthOutcome:
    outcome = HealthOutcome()
    image = images[case.image]
    test = client.images.get(image).attrs["Config"]["Healthcheck"]["Test"]
    healthcheck = None if case.own_timing else {
        "test": test, "interval": SECOND, "timeout": 5 * SECOND, "retries": 2,
        "start_period": 0 if case.expect == "unhealthy" else 90 * SECOND}
    env = dict(case.env)
    if case.hub:
        env.update(hub_environment(case.port, PREFIX))
    container = client.containers.run(
        image, list(case.command) if case.command else None, detach=True, environment=env, user=case.user or "",
        ports={f"{case.port}/tcp": ("127.0.0.1", None)}, healthcheck=healthcheck, labels={LABEL: case.id},
        group_add=list(case.group_add) or None)
    started = time.monotonic()
    try:
        if case.hub:
            container.exec_run(["python", "-c", HUB_STUB, str(HUB_PORT), HUB_USER, HUB_TOKEN], detach=True)
        first = "healthy" if case.then else case.expect
        outcome.status = _wait_health(container, first, 90 if case.own_timing else 75)
        if case.then and outcome.status == "healthy":
            container.exec_run(["bash", "-c", case.then], user="root")
            outcome.status = _wait_health(container, case.expect, 30)
        outcome.seconds = round(time.monotonic() - started, 1)
        container.reload()
        base = f"{case.scheme}://127.0.0.1:{container.ports[f'{case.port}/tcp'][0]['HostPort']}/"
        for probe in case.probes:  # a fresh session each: a token once accepted sets a login cookie
            headers = {"Authorization": f"token {probe.token}"} if probe.token else {}
            answer = _session().get(base + probe.path, headers=headers, timeout=15, allow_redirects=False)
            outcome.probes.append((probe, answer.status_code))
        if case.login:
            outcome.login = (_login(base, case.login), _login(base, "not-" + case.login))
            found = container.exec_run(["python", "-c", SERVER_ENVIRON, case.login], user=case.user or "").output.decode().split()
            assert found and found[0] != "0", f"no server process found: {found}"
            outcome.password_in_environment = found[1] != "0"
        if case.absent:
            found = container.exec_run(["python", "-c", SERVER_ENVIRON, case.absent], user=case.user or "").output.decode().split()
            assert found and found[0] != "0", f"no server process found: {found}"
            outcome.absent_in_environment = found[1] != "0"
    except Exception as exc:  # noqa: BLE001 - reported by the case's test
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        outcome.logs = container.logs(tail=20).decode(errors="replace")
        container.remove(force=True)
    return outcome


@pytest.fixture(scope="module")
def health_outcomes(images, client) -> dict[str, HealthOutcome]:
    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip([c.id for c in HEALTH_CASES], pool.map(lambda c: _run_health_case(client, images, c), HEALTH_CASES)))


@pytest.mark.parametrize("case", HEALTH_CASES, ids=[c.id for c in HEALTH_CASES])
def test_health(case: HealthCase, health_outcomes: dict[str, HealthOutcome]) -> None:
    outcome = health_outcomes[case.id]
    print(f"{case.id}: {outcome.status} after {outcome.seconds} s")
    assert outcome.error == "", f"{outcome.error}\n{outcome.logs}"
    assert outcome.status == case.expect, f"health {outcome.status} after {outcome.seconds} s\n{outcome.logs}"
    wrong = [(p.path, p.token, p.status, got) for p, got in outcome.probes if got != p.status]
    assert wrong == [], f"(path, token, expected, got): {wrong}\n{outcome.logs}"
    if case.login:
        right, bad = outcome.login
        assert right == (302, 200), f"login with the password: POST {right[0]}, then API {right[1]}"
        assert bad[1] == 403, f"a wrong password reached the API: {bad}"
        assert outcome.password_in_environment is False, "the plain password is in a process environment"
    if case.absent:
        assert outcome.absent_in_environment is False, f"{case.absent!r} is in the server's environment"


def test_the_health_check_has_docker_stacks_path_and_cadence(images, client, health_outcomes) -> None:
    """/etc/jupyter/docker_healthcheck.py every 3 s after a 3 s start period, 3 retries (the timeout is ours: 3 s);
    the image-timing case turned healthy with exactly that, so not sooner than the first probe at 3 s."""
    config = client.images.get(images["lab"]).attrs["Config"]["Healthcheck"]
    assert config["Test"] == ["CMD", "/etc/jupyter/docker_healthcheck.py"]
    assert (config["Interval"], config["StartPeriod"], config["Retries"], config["Timeout"]) == (3 * SECOND, 3 * SECOND, 3, 3 * SECOND)
    assert health_outcomes["default-with-the-image-timing"].seconds >= 2.5


# --- listening on IPv6, RESTARTABLE -----------------------------------------------------------

# Which addresses listen on the port (from /proc/net/tcp{,6}); with a global IPv6 address on the
# container, also a real connection to it.
LISTENING = """
import socket, sys
port = int(sys.argv[1])
def listening(path):
    for line in open(path).read().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return local.split(":")[0]
print("v4", listening("/proc/net/tcp"), "v6", listening("/proc/net/tcp6"))
try:
    addresses = [l.split()[0] for l in open("/proc/net/if_inet6") if l.split()[3] == "00"]  # global scope
except OSError:  # IPv6 is off in this kernel
    addresses = []
for raw in addresses:
    address = ":".join(raw[i:i + 4] for i in range(0, 32, 4))
    with socket.create_connection((address, port), timeout=5):
        print("connected over IPv6 to", address)
"""


def _started(client, image: str, **options):
    container = client.containers.run(image, detach=True, labels={LABEL: "start-contract"}, **options)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        container.reload()
        if (container.attrs["State"].get("Health") or {}).get("Status") == "healthy" or container.status == "exited":
            break
        time.sleep(1)
    return container


def test_the_server_listens_on_ipv4_and_ipv6(images, client) -> None:
    container = _started(client, images["lab"])
    try:
        out = container.exec_run(["python", "-c", LISTENING, "8888"]).output.decode()
    finally:
        container.remove(force=True)
    assert re.search(r"^v4 0{8} v6 0{32}$", out, re.MULTILINE), out  # every address of both families
    assert "Traceback" not in out, out


def test_restartable_starts_the_server_again_in_the_same_container(images, client) -> None:
    container = _started(client, images["lab"], environment={"RESTARTABLE": "yes"})
    servers = ("import glob\nfor p in glob.glob('/proc/[0-9]*/cmdline'):\n    args = open(p, 'rb').read().split(b'\\0')\n"
               "    if len(args) > 1 and args[1].endswith(b'/jupyter-lab'):\n        print(p.split('/')[2])\n")  # python .../jupyter-lab
    try:
        container.reload()
        assert (container.attrs["State"].get("Health") or {}).get("Status") == "healthy", container.logs().decode()
        before = set(container.exec_run(["python", "-c", servers]).output.decode().split())
        assert before, "no server process"
        killed = container.exec_run(["bash", "-c", f"kill {' '.join(before)}"])  # bash's kill: minbase has no /bin/kill
        assert killed.exit_code == 0, killed.output.decode()
        after: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not after:
            time.sleep(2)
            after = set(container.exec_run(["python", "-c", servers]).output.decode().split()) - before
        runtime = container.exec_run(["bash", "-c", "for i in $(seq 60); do /etc/jupyter/docker_healthcheck.py && exit; sleep 1; done"])
        container.reload()
        logs = container.logs().decode(errors="replace")
        assert container.status == "running", logs
        assert after, f"no new server after killing {before}\n{logs}"
        assert runtime.exit_code == 0, runtime.output.decode() + logs
        assert "starting it again (RESTARTABLE=yes)" in logs
    finally:
        container.remove(force=True)
