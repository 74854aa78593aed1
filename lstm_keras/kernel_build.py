"""Compiling the fused kernel: a ladder of compiler flags, a cache keyed by the rung that built.

`-march=native` gives the fastest kernel, and fails on some CPUs: TensorFlow's bundled Eigen does
not compile with g++ 12 when the CPU has AVX512-FP16 (Sapphire Rapids). So the build climbs down
a ladder until a rung compiles:

    native                      -march=native            (aarch64: -mcpu=native)
    native-no-<ext>…            -march=native -mno-<ext>  for the extensions the failed rung's
                                errors point at (Eigen's arch/AVX512/PacketMathFP16.h →
                                avx512fp16) and those known to break Eigen, where native has them
    x86-64-v3                   AVX2 + FMA (any x86-64 CPU since ~2015)
    x86-64-v2                   SSE4.2
    generic                     no -march

The library lands in `$LSTM_KERAS_KERNEL_CACHE` (default `~/.cache/lstm_keras`) under a name
keyed by the source, TensorFlow, the compiler, the CPU and the rung; a manifest beside it says
which rung built (or that none did), and a build log keeps every failed rung's errors.
`LSTM_KERAS_FUSED=0` switches the kernel off on purpose: nothing is built and the layers use the
tf_while engine.

This module imports TensorFlow only to ask for its compile flags and version.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).parent / "kernels" / "fused_rnn.cc"
BASE_FLAGS = ("-std=c++17", "-O3", "-shared", "-fPIC", "-Wno-deprecated-declarations")
OPT_OUT = "LSTM_KERAS_FUSED"  # "0" (or off/false/no): never build or use the kernel
# ISA extensions with which g++ cannot compile TensorFlow's Eigen (seen: g++ 12.2, TF 2.21).
KNOWN_TO_BREAK_EIGEN = ("avx512fp16",)
# Where an error in Eigen's per-ISA code names the extension to leave out.
_EIGEN_ARCH_ERRORS = (
    (re.compile(r"AVX512/\w*FP16", re.I), "avx512fp16"),
    (re.compile(r"AVX512/\w*BF16", re.I), "avx512bf16"),
    (re.compile(r"AVX512/"), "avx512f"),
)
_MAX_EXCLUDED = 4  # extensions left out of native before giving up on it


class KernelBuildError(RuntimeError):
    pass


class NoCompilerError(KernelBuildError):
    """No C++ compiler at all: not a failure of the ladder (the layers use tf_while)."""


@dataclass(frozen=True)
class Rung:
    name: str
    flags: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.name} ({' '.join(self.flags) or 'no -march'})"


def opted_out() -> str | None:
    """Why the kernel is switched off on purpose (None: it is not)."""
    value = os.environ.get(OPT_OUT, "")
    if value.strip().lower() in ("0", "off", "false", "no"):
        return f"{OPT_OUT}={value} (the fused kernel is switched off; the layers use tf_while)"
    return None


def compiler() -> str:
    return os.environ.get("CXX", "g++")


def _machine() -> str:
    return platform.machine().lower()


def _native_flag() -> str:
    return "-mcpu=native" if _machine() in ("aarch64", "arm64") else "-march=native"


def fixed_rungs() -> list[Rung]:
    """The ladder without its dynamic rungs (native minus the extensions that broke it)."""
    native = Rung("native", (_native_flag(),))
    if _machine() in ("x86_64", "amd64"):
        return [
            native,
            Rung("x86-64-v3", ("-march=x86-64-v3",)),
            Rung("x86-64-v2", ("-march=x86-64-v2",)),
            Rung("generic", ()),
        ]
    return [native, Rung("generic", ())]


def rung_named(name: str) -> Rung:
    """A rung by name: a fixed one, or `native-no-a-no-b` (native without extensions a, b)."""
    for rung in fixed_rungs():
        if rung.name == name:
            return rung
    if name.startswith("native-no-"):
        return _without(name.removeprefix("native-no-").split("-no-"))
    valid = ", ".join(r.name for r in fixed_rungs())
    raise ValueError(f"Unknown rung {name!r}. Valid choices: {valid}, native-no-<extension>[-no-…].")


def _without(extensions) -> Rung:
    extensions = sorted(set(extensions))
    return Rung("native-no-" + "-no-".join(extensions), (_native_flag(), *(f"-mno-{e}" for e in extensions)))


def native_extensions(cxx: str | None = None) -> frozenset[str]:
    """ISA extensions `-march=native` turns on, as the compiler names them (`avx512fp16`)."""
    try:
        out = subprocess.run(
            [cxx or compiler(), _native_flag(), "-Q", "--help=target"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    found = re.findall(r"^\s+-m([a-z0-9][a-z0-9.-]*)\s+\[enabled\]", out, re.M)
    return frozenset(found)


def extensions_blamed(errors: str) -> set[str]:
    """Extensions that a failed build's errors point at (Eigen's per-ISA files): the specific
    ones (FP16, BF16) where named, else AVX-512 as a whole."""
    specific = {ext for pattern, ext in _EIGEN_ARCH_ERRORS[:-1] if pattern.search(errors)}
    pattern, everything = _EIGEN_ARCH_ERRORS[-1]
    return specific or ({everything} if pattern.search(errors) else set())


def _identity(cxx: str) -> str:
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    return f"{cxx}|{version.splitlines()[0] if version else ''}"


def _cpu_signature() -> str:
    """What `-march=native` compiled for: a kernel built on one CPU must not run on another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "|".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def cache_dir() -> Path:
    return Path(os.environ.get("LSTM_KERAS_KERNEL_CACHE") or Path.home() / ".cache" / "lstm_keras")


def stem() -> Path:
    """The cache's name for this source, TensorFlow, compiler and CPU (the rung comes after it)."""
    import tensorflow as tf

    parts = (
        SOURCE.read_bytes(),
        tf.__version__,
        " ".join(BASE_FLAGS),
        " ".join(tf.sysconfig.get_compile_flags()),
        _identity(compiler()),
        _cpu_signature(),
    )
    key = hashlib.sha256(b"\0".join(p if isinstance(p, bytes) else p.encode() for p in parts)).hexdigest()
    return cache_dir() / f"fused_rnn-tf{tf.__version__}-{key[:16]}"


def op_suffix(rung: Rung) -> str:
    """The suffix a rung's extra build gives its op names (LstmSequenceX8664V3)."""
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]+", rung.name) if part)


@dataclass
class BuildResult:
    """What the ladder ended with: the rung that built (None: none did) and every failure."""

    rung: Rung | None
    library: Path | None
    failures: list[dict]  # {"rung", "flags", "errors"}: the first error lines of each failed rung
    log: Path

    def as_json(self) -> dict:
        return {
            "rung": self.rung.name if self.rung else None,
            "flags": list(self.rung.flags) if self.rung else None,
            "library": self.library.name if self.library else None,
            "failures": self.failures,
            "log": self.log.name,
        }

    def summary(self) -> str:
        lines = [f"rung {f['rung']} ({' '.join(f['flags']) or 'no -march'}) failed:" for f in self.failures]
        return "; ".join(lines) + f" (errors of every rung in {self.log})"


def _beside(base: Path, extension: str) -> Path:
    return base.parent / (base.name + extension)  # not with_suffix: the name has dots


def _manifest(base: Path) -> Path:
    return _beside(base, ".json")


def cached(base: Path | None = None) -> BuildResult | None:
    """The last build's result from the manifest, if its library (or its failure) is on disk."""
    base = base or stem()
    try:
        data = json.loads(_manifest(base).read_text())
    except (OSError, ValueError):
        return None
    rung = Rung(data["rung"], tuple(data["flags"])) if data.get("rung") else None
    library = base.parent / data["library"] if data.get("library") else None
    if rung is not None and not (library and library.exists()):
        return None
    return BuildResult(rung, library, data.get("failures", []), base.parent / data["log"])


def _compile(cxx: str, rung: Rung, target: Path, defines: tuple[str, ...] = ()) -> str | None:
    """Compile the source with `rung`'s flags into `target`; None, or the compiler's stderr."""
    import tensorflow as tf

    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    command = [
        cxx,
        *BASE_FLAGS,
        *rung.flags,
        *defines,
        *tf.sysconfig.get_compile_flags(),
        str(SOURCE),
        "-o",
        str(partial),
        *tf.sysconfig.get_link_flags(),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError as e:
        partial.unlink(missing_ok=True)
        raise NoCompilerError(f"no C++ compiler {cxx!r} (set CXX)") from e
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        return f"$ {' '.join(command)}\nexit {result.returncode}\n{result.stderr}"
    os.replace(partial, target)  # atomic: a reader never sees half a library
    return None


def _error_lines(stderr: str, limit: int = 5) -> list[str]:
    return [ln.strip() for ln in stderr.splitlines() if "error" in ln.lower()][:limit] or [
        stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    ]


def _library_for(base: Path, rung: Rung, suffix: str = "") -> Path:
    return base.parent / f"{base.name}-{rung.name}{'-ops' + suffix if suffix else ''}.so"


def _ladder(cxx: str, base: Path, log) -> BuildResult:
    failures: list[dict] = []
    rungs = fixed_rungs()
    excluded: set[str] = set()
    enabled: frozenset[str] | None = None
    i = 0
    while i < len(rungs):
        rung = rungs[i]
        i += 1
        target = _library_for(base, rung)
        stderr = _compile(cxx, rung, target)
        if stderr is None:
            return BuildResult(rung, target, failures, _beside(base, ".log"))
        failures.append({"rung": rung.name, "flags": list(rung.flags), "errors": _error_lines(stderr)})
        log.write(f"=== rung {rung.describe()} failed ===\n{stderr}\n")
        log.flush()
        if rung.name.startswith("native") and len(excluded) < _MAX_EXCLUDED:
            # Native again, without the extensions the errors point at and those known to
            # break Eigen that this CPU has (each retry must leave out something new).
            enabled = native_extensions(cxx) if enabled is None else enabled
            blamed = extensions_blamed(stderr) | (set(KNOWN_TO_BREAK_EIGEN) & enabled)
            if blamed - excluded:
                excluded |= blamed
                rungs.insert(i, _without(excluded))
    return BuildResult(None, None, failures, _beside(base, ".log"))


def build(force: bool = False) -> BuildResult:
    """Climb the ladder unless a build is cached (safe to call from concurrent processes).

    A cached failure is returned as it is unless `force`; `NoCompilerError` if there is no
    compiler at all. The manifest records the outcome either way."""
    base = stem()
    if not force and (result := cached(base)) is not None:
        return result
    base.parent.mkdir(parents=True, exist_ok=True)
    with open(_beside(base, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if not force and (result := cached(base)) is not None:
            return result
        cxx = compiler()
        with open(_beside(base, ".log"), "w") as log:
            log.write(f"fused kernel build: {cxx}, source {SOURCE}\n")
            result = _ladder(cxx, base, log)
            if result.rung is not None:
                log.write(f"=== rung {result.rung.describe()} built {result.library.name} ===\n")
        _manifest(base).write_text(json.dumps(result.as_json(), indent=1))
    return result


def build_rung(rung: Rung) -> Path:
    """One rung on its own, with its ops renamed (`op_suffix`), so that it loads beside the
    default build: what the benchmark compares. Raises KernelBuildError if it fails."""
    base = stem()
    suffix = op_suffix(rung)
    target = _library_for(base, rung, suffix)
    if target.exists():
        return target
    base.parent.mkdir(parents=True, exist_ok=True)
    with open(_beside(base, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            stderr = _compile(compiler(), rung, target, (f'-DOP_SUFFIX="{suffix}"',))
            if stderr is not None:
                raise KernelBuildError(f"rung {rung.describe()} failed: " + " | ".join(_error_lines(stderr)))
    return target


def as_record(result: BuildResult) -> dict[str, str]:
    """The rung as a run records it (tags)."""
    return {"fused_kernel_rung": result.rung.name, "fused_kernel_flags": " ".join(result.rung.flags)}
