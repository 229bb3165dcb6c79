"""The kernel probe's protocol logic against a scripted kernel client (the probe itself runs inside images)."""
from __future__ import annotations

import io
import itertools
import queue

import pytest

from builder.check.probes.kernel_probe import Clock, run, wait_for_shell_reply


def msg(kind: str, parent: str, **content) -> dict:
    return {"msg_type": kind, "parent_header": {"msg_id": parent}, "content": content}


class FakeClient:
    """A kernel that answers on shell at once and publishes on IOPub only once `iopub_connected_after` executions ran."""

    def __init__(self, iopub_connected_after: int = 0, output: str = "42\n", answers_info: bool = True,
                 joined_before_idle: bool = False):
        self.shell, self.iopub = queue.Queue(), queue.Queue()
        self.ids = (f"m{i}" for i in itertools.count())
        self.iopub_connected_after, self.output, self.answers_info = iopub_connected_after, output, answers_info
        self.joined_before_idle = joined_before_idle  # the executions IOPub missed still show their "idle"
        self.executed = 0

    def kernel_info(self) -> str:
        msg_id = next(self.ids)
        if self.answers_info:
            self.shell.put(msg("kernel_info_reply", msg_id))  # and nothing on IOPub, like the Kotlin kernel
        return msg_id

    def execute(self, code: str) -> str:
        msg_id = next(self.ids)
        self.executed += 1
        self.iopub.put(msg("status", "kernel-info-of-someone", execution_state="idle"))  # not ours: ignored
        if self.executed > self.iopub_connected_after:
            self.iopub.put(msg("status", msg_id, execution_state="busy"))
            self.iopub.put(msg("stream", msg_id, name="stdout", text=self.output))
            self.iopub.put(msg("status", msg_id, execution_state="idle"))
        elif self.joined_before_idle:
            self.iopub.put(msg("status", msg_id, execution_state="idle"))
        self.shell.put(msg("execute_reply", msg_id, status="ok"))
        return msg_id

    def get_shell_msg(self, timeout: float) -> dict:
        return self.shell.get(timeout=min(timeout, 0.05))

    def get_iopub_msg(self, timeout: float) -> dict:
        return self.iopub.get(timeout=min(timeout, 0.05))


class Alive:
    def __init__(self, alive: bool = True):
        self.alive = alive

    def is_alive(self) -> bool:
        return self.alive


def test_a_shell_reply_is_enough_to_be_ready_even_if_iopub_stays_silent() -> None:
    wait_for_shell_reply(FakeClient(), Alive(), Clock(5), io.StringIO())


def test_no_reply_times_out_and_a_dead_kernel_is_named_with_what_it_wrote() -> None:
    with pytest.raises(RuntimeError, match="no kernel_info reply in 1 seconds"):
        wait_for_shell_reply(FakeClient(answers_info=False), Alive(), Clock(1), io.StringIO())
    log = io.StringIO()
    log.write("starting\n" + "x" * 5000 + "\nzmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:21060')\n")
    with pytest.raises(RuntimeError, match=r"died before replying to kernel_info; it wrote: x+\nzmq.error.ZMQError: Address"):
        wait_for_shell_reply(FakeClient(answers_info=False), Alive(False), Clock(5), log)
    with pytest.raises(RuntimeError, match=r"it wrote: \(nothing\)"):
        wait_for_shell_reply(FakeClient(answers_info=False), Alive(False), Clock(5), io.StringIO())


def test_probe_ports_lie_below_the_ephemeral_range_a_kernel_connection_may_take() -> None:
    from builder.check.idle import _probe_ports

    assert all(_probe_ports(i) + 4 < 32768 for i in range(12))  # Linux's default ip_local_port_range: 32768-60999
    assert _probe_ports(1) - _probe_ports(0) >= 5  # five ports each, disjoint


def test_the_output_is_what_iopub_says_for_this_execution_only() -> None:
    assert run(FakeClient(), "print(42)", 5.0, Clock(5)) == (True, "42\n", None)


def test_outputs_lost_before_iopub_connected_are_noticed_and_the_snippet_runs_again() -> None:
    client = FakeClient(iopub_connected_after=1)
    assert run(client, "print(42)", 0.3, Clock(5)) == (False, "", None)
    assert run(client, "print(42)", 5.0, Clock(5)) == (True, "42\n", None)
    assert client.executed == 2


def test_an_idle_without_its_busy_means_iopub_joined_late_and_the_snippet_runs_again() -> None:
    """The subscription connected after "busy" and the output but before "idle": an empty output is no answer."""
    client = FakeClient(iopub_connected_after=1, joined_before_idle=True)
    assert run(client, "print(42)", 5.0, Clock(5)) == (False, "", None)
    assert run(client, "print(42)", 5.0, Clock(5)) == (True, "42\n", None)


def test_kernels_of_a_run_start_no_more_than_its_slots_at_once() -> None:
    """Every image's kernels share the run's slots: on two cores, two kernels start at a time, not fourteen."""
    import json
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from builder.check.idle import _kernel
    from builder.check.options import kernel_slots
    from builder.specification.models import KernelSpec

    running, peak, lock = [0], [0], threading.Lock()

    class Container:
        def exec(self, command, timeout=None):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return SimpleNamespace(text=json.dumps({"output": "42\n", "error": None}), exit_code=0)

    slots = kernel_slots(2)
    kernel = KernelSpec(name="k", language="x", snippet="print(42)", expect="42")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: _kernel(Container(), "img", "frag", kernel, 21000 + 10 * i, slots), range(8)))
    assert all(r.status == "passed" for r in results)
    assert peak[0] == 2
