"""Run one snippet on one kernel over the Jupyter protocol; print the output as JSON.

Runs inside the image under test with the image's own jupyter_client:
    python -c "$(cat kernel_probe.py)" KERNEL_NAME SNIPPET TIMEOUT FIRST_PORT
stream, execute_result and display_data outputs all count (kernels differ in
which one they use); an error reply is reported as such.

Probes of one image run side by side in one container. Left to itself,
jupyter_client picks ports by binding and releasing them, so two probes
starting together can pick the same ones and talk to each other's kernel
("Invalid Signature"); each probe therefore gets its own five ports from
FIRST_PORT on (below the kernel's ephemeral range, so no connection of
another kernel can hold one of them when this kernel binds it).

The kernel's own stdout and stderr go to a file, not to the probe's output
(which is one line of JSON): a kernel that dies at start is reported with the
last lines it wrote.

Readiness is a kernel_info reply on the shell channel. jupyter_client's
`wait_for_ready` also insists on an IOPub message right after that reply;
a kernel that publishes nothing on IOPub for kernel_info (the Kotlin kernel)
and whose one start-up status was published before the client's
subscription was connected (a race that a loaded machine makes likely)
then never counts as ready. So this probe waits for the shell reply only.
The same race can cut into the snippet's own messages: the subscription may
connect after the kernel published "busy" and the output but before "idle".
An execution counts as seen whole only when its "busy" arrived; if it did
not (or IOPub stayed silent although the shell says it ran), the snippet
runs once more on the now connected channel.
"""
import json
import queue
import sys
import tempfile
import time

KERNEL_LOG_TAIL = 1500  # characters of the kernel's own output quoted when it died


class Clock:
    """The probe's one deadline."""

    def __init__(self, timeout: float):
        self.timeout, self.deadline = timeout, time.monotonic() + timeout

    def left(self) -> float:
        return max(0.1, self.deadline - time.monotonic())

    def over(self) -> bool:
        return time.monotonic() > self.deadline


def wait_for_shell_reply(kc, km, clock: Clock, log) -> None:
    """kernel_info until the kernel replies on the shell channel (asking again each second)."""
    while True:
        kc.kernel_info()
        try:
            while True:
                msg = kc.get_shell_msg(timeout=1)
                if msg["msg_type"] == "kernel_info_reply":
                    return
        except queue.Empty:
            pass
        if not km.is_alive():
            raise RuntimeError(f"the kernel died before replying to kernel_info; it wrote: {tail(log) or '(nothing)'}")
        if clock.over():
            raise RuntimeError(f"no kernel_info reply in {clock.timeout:.0f} seconds")


def tail(log) -> str:
    """The end of what the kernel wrote to its stdout and stderr."""
    log.flush()
    log.seek(0)
    return log.read()[-KERNEL_LOG_TAIL:].strip()


def run(kc, snippet: str, grace: float, clock: Clock) -> tuple[bool, str, str | None]:
    """(complete, output, error) of one execution: complete once IOPub said busy, then idle, for it; False
    when idle came without busy (IOPub connected mid-execution: outputs may be lost), or when the shell
    replied but IOPub stayed silent for `grace` seconds after that reply."""
    msg_id = kc.execute(snippet)
    parts, error, replied_at, busy = [], None, None, False
    while True:
        wait = min(1.0, clock.left())
        try:
            msg = kc.get_iopub_msg(timeout=wait)
        except queue.Empty:
            msg = None
        if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
            content, kind = msg["content"], msg["msg_type"]
            if kind == "stream":
                parts.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                data = content["data"]  # kernels differ: text/plain, text/markdown (C++), text/html...
                parts.append(data.get("text/plain") or next((v for k, v in sorted(data.items()) if k.startswith("text/")), ""))
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "busy":
                busy = True
            elif kind == "status" and content["execution_state"] == "idle":
                return busy, "".join(parts), error
        if replied_at is None:
            try:
                reply = kc.get_shell_msg(timeout=0.01)
                if reply["parent_header"].get("msg_id") == msg_id:
                    replied_at = time.monotonic()
            except queue.Empty:
                pass
        elif not parts and time.monotonic() - replied_at > grace:
            return False, "", error
        if clock.over():
            raise TimeoutError(f"no idle status for the snippet in {clock.timeout:.0f} seconds; output so far: {''.join(parts)!r}")


def probe(name: str, code: str, clock: Clock, first_port: int) -> dict:
    """Start the kernel, run the snippet, shut the kernel down: {"output": ..., "error": ...}."""
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        return probe_logged(name, code, clock, first_port, log)


def probe_logged(name: str, code: str, clock: Clock, first_port: int, log) -> dict:
    """`probe`, the kernel writing its own output to `log`."""
    from jupyter_client.manager import KernelManager

    result = {"output": "", "error": None}
    km = KernelManager(kernel_name=name)
    kc = None
    try:
        km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port = range(first_port, first_port + 5)
        km.start_kernel(stdout=log, stderr=log)
        kc = km.client()
        kc.start_channels()
        wait_for_shell_reply(kc, km, clock, log)
    except Exception as exc:  # noqa: BLE001 - any failure to start is the finding
        result["error"] = f"kernel did not start: {type(exc).__name__}: {exc}"
        _stop(km, kc)
        return result
    try:
        complete, output, error = run(kc, code, 5.0, clock)
        if not complete:  # IOPub was not connected (or not from the start) for that run: it is now
            complete, output, error = run(kc, code, clock.left(), clock)
        result["output"], result["error"] = output, error
    except Exception as exc:  # noqa: BLE001
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _stop(km, kc)
    return result


def _stop(km, kc) -> None:
    if kc is not None:
        kc.stop_channels()
    if km.has_kernel:
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2], Clock(float(sys.argv[3])), int(sys.argv[4]))))
