"""Running the benchmark as a CPU without AVX-512 would: every library capped at AVX2.

Our kernel is compiled for the CPU it runs on, while TensorFlow's and PyTorch's matrix products
(oneDNN, MKL) and PyTorch's own kernels choose their instruction set at run time. Building only
our kernel for `x86-64-v3` on an AVX-512 machine therefore pits an AVX2 build against AVX-512
libraries — not what an AVX2-only machine sees. With a cap, each library is told to stop at the
same level through its documented switch, before it is imported, and our layers run the build of
the matching rung of the flag ladder.
"""

from __future__ import annotations

import os
import sys

# cap → (the environment that caps each library, the kernel's flag-ladder rung at that level)
CAPS = {
    "avx2": (
        {
            "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, in TensorFlow and in PyTorch
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL, PyTorch's BLAS
            "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's vectorised kernels
        },
        "x86-64-v3",
    ),
}


def apply(cap: str) -> str:
    """Set `cap`'s environment for this process and its children; return the kernel rung to run.
    Must come before TensorFlow or PyTorch is imported: each reads its switch once, at load."""
    if cap not in CAPS:
        raise ValueError(f"Unknown ISA cap {cap!r}. Valid choices: {', '.join(CAPS)}.")
    loaded = [name for name in ("tensorflow", "torch") if name in sys.modules]
    if loaded:
        raise RuntimeError(f"cap {cap!r} must be set before importing {', '.join(loaded)}")
    env, rung = CAPS[cap]
    os.environ.update(env)
    return rung


def describe(cap: str, torch=None) -> str:
    """One line for the table: what was capped, and what PyTorch reports it now uses."""
    env, rung = CAPS[cap]
    switches = ", ".join(f"{k}={v}" for k, v in env.items())
    seen = f"; PyTorch reports {torch.backends.cpu.get_cpu_capability()}" if torch else ""
    return f"ISA capped at {cap.upper()} ({switches}); our layers on the {rung} build{seen}"
