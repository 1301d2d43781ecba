"""The CPU's instruction-set flags, read once (every route lirlab picks by processor starts here), and
the ONNX Runtime CPU sessions those routes run in."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The flags ``/proc/cpuinfo`` lists (``flags`` on x86, ``Features`` on Arm); empty where it cannot
    be read (then no route that needs a flag is taken)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def onnx_cpu_session(model_bytes: bytes, threads: int):
    """An ONNX Runtime session on the CPU with ``threads`` intra-op threads, quiet, not spinning.

    ONNX Runtime's idle threads spin after each run by default, taking the cores from the torch work
    between runs: one MiniLM query took 16-21 ms with spinning, 13-14 ms without (2-core Zen 3).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
