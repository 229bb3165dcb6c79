"""Run one snippet on one kernel over the Jupyter protocol; print the output as JSON.

Runs inside the image under test with the image's own jupyter_client:
    python -c "$(cat kernel_probe.py)" KERNEL_NAME SNIPPET TIMEOUT FIRST_PORT
stream, execute_result and display_data outputs all count (kernels differ in
which one they use); an error reply is reported as such.

Probes of one image run side by side in one container. Left to itself,
jupyter_client picks ports by binding and releasing them, so two probes
starting together can pick the same ones and talk to each other's kernel
("Invalid Signature"); each probe therefore gets its own five ports from
FIRST_PORT on.
"""
import json
import sys
import time

name, code, timeout, first_port = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
result = {"output": "", "error": None}
km = None
try:
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=name)
    km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port = range(first_port, first_port + 5)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=timeout)
except Exception as exc:  # noqa: BLE001 - any failure to start is the finding
    result["error"] = f"kernel did not start: {type(exc).__name__}: {exc}"
    print(json.dumps(result))
    if km is not None and km.has_kernel:
        km.shutdown_kernel(now=True)
    sys.exit(0)
try:
    kc.execute(code)
    parts = []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(1.0, deadline - time.monotonic()))
        content, kind = msg["content"], msg["msg_type"]
        if kind == "stream":
            parts.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            data = content["data"]  # kernels differ: text/plain, text/markdown (C++), text/html...
            parts.append(data.get("text/plain") or next((v for k, v in sorted(data.items()) if k.startswith("text/")), ""))
        elif kind == "error":
            result["error"] = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle" and msg["parent_header"].get("msg_type") == "execute_request":
            break
    result["output"] = "".join(parts)
except Exception as exc:  # noqa: BLE001
    result["error"] = f"{type(exc).__name__}: {exc}"
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print(json.dumps(result))
