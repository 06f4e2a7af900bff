"""Which CPU kernels compute the numbers: one place decides it for every process of the project.

PyTorch, oneDNN, MKL, numpy and OpenBLAS each choose their kernels by the processor's instruction set when they
start, and kernels of different vector widths add in different orders. Measured (README, "Determinism"): the
ResNet-20 quick run of notebook 02 ends at 0.9533, 0.9689, 0.9756 or 0.9400 test accuracy on one AVX-512 machine
depending on which one of ATen, oneDNN or MKL is held to AVX2; numpy's float64 ``exp``/``log``/``log1p`` and
OpenBLAS's matrix product give other last bits on AVX-512 than on AVX2 (``tests/test_numerics.py``). Across
vendors (an AMD EPYC against an Intel Xeon, both held to AVX2) oneDNN's convolutions agreed, MKL's AVX2 branch did
not (``nn.Linear``, ``torch.exp``, ``torch.bmm``, Adam): its vendor-neutral branch did.

So by default every process of the project pins them all to kernels that every current x86-64 server and laptop
has (AVX2; MKL's vendor-neutral branch):

============================  ==============  ===========================================================
variable                      value           library
============================  ==============  ===========================================================
``ATEN_CPU_CAPABILITY``       ``avx2``        PyTorch's own vectorised kernels (ATen dispatch)
``ONEDNN_MAX_CPU_ISA``        ``AVX2``        oneDNN (convolutions)
``MKL_CBWR``                  ``COMPATIBLE``  MKL (torch's matrix products and vector math): the same
                                              results on every vendor's processor
``OPENBLAS_CORETYPE``         ``Haswell``     OpenBLAS under numpy and scipy
``NPY_DISABLE_CPU_FEATURES``  AVX-512 groups  numpy's own SIMD loops (1.x and 2.x names)
============================  ==============  ===========================================================

:func:`pin` runs when ``repronets`` is imported, so it must come before ``import torch`` or ``import numpy``
(each library reads its variable when it loads or first computes). The variables are set in ``os.environ``, so
every process started from there (the notebooks' kernels, executor workers, ``torchrun`` ranks) inherits them.

Opting out: ``REPRONETS_CPU_ISA=native`` (or ``--native-kernels`` on ``run_all.sh`` and ``python -m
repronets.<experiment>``) leaves each library its fastest kernels. :func:`current` reports what a process really
runs with, read back from the libraries where they can tell (ATen, numpy, OpenBLAS): a process whose libraries were
loaded before the pin is recorded as ``native``, whatever was asked for. Results record it, and the run store
never mixes the two (:mod:`repronets.runs.results`).

What is not covered: GPU kernels (a GPU run records its device; cuDNN and cuBLAS choose by the GPU), another thread
count (parallel sums split differently: recorded and compared too), non-x86-64 processors (recorded as native).
NNPACK, which torch may use for some CPU convolutions, has only AVX2 kernels on x86-64: it needs no pin.
"""

from __future__ import annotations

import functools
import os
import platform
import sys

ENV = "REPRONETS_CPU_ISA"
FLAG = "--native-kernels"
PINNED = "avx2"
NATIVE = "native"
MODES = (PINNED, NATIVE)

# numpy's AVX-512 dispatch targets: 1.x names them one by one, 2.x groups them as X86_V4 (unknown names are ignored).
_NUMPY_AVX512 = "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR X86_V4"
SETTINGS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # Not AVX2: MKL's AVX2 branch gives other sums on an Intel Xeon than on an AMD EPYC (measured: torch 2.11, nn.Linear
    # forward and backward, torch.exp, torch.bmm, Adam's step); COMPATIBLE is MKL's branch for the same results on
    # every vendor's processor, and it made every one of those equal.
    "MKL_CBWR": "COMPATIBLE",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": _NUMPY_AVX512,
}
_ORIGINAL = {k: os.environ.get(k) for k in SETTINGS}  # the user's own values, given back when opting out


class NumericsError(ValueError):
    """A bad ``REPRONETS_CPU_ISA``."""


def requested(environ=None, argv=None) -> str:
    """The mode asked for: ``--native-kernels`` on a ``python -m`` command line, else ``$REPRONETS_CPU_ISA``, else
    ``avx2``. (While ``python -m repronets.x`` imports the package, ``sys.argv[0]`` is still ``-m``.)"""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    if argv[:1] == ["-m"] and FLAG in argv:
        return NATIVE
    mode = environ.get(ENV, PINNED).strip().lower() or PINNED
    if mode not in MODES:
        raise NumericsError(
            f"{ENV}={environ.get(ENV)!r}: choose {PINNED} (the default: the same numbers on every x86-64 CPU with "
            f"AVX2) or {NATIVE} (each library's fastest kernels for this CPU; results marked as such)"
        )
    return mode


def pin(mode: str | None = None, environ=None) -> str:
    """Set (``avx2``) or clear (``native``) the kernel variables in ``environ`` (default: ``os.environ``); returns
    the mode. The chosen mode is written to ``$REPRONETS_CPU_ISA`` too, so child processes make the same choice."""
    environ = os.environ if environ is None else environ
    mode = mode or requested(environ)
    if mode not in MODES:
        raise NumericsError(f"numerics mode {mode!r}: choose one of {MODES}")
    environ[ENV] = mode
    if mode == PINNED and platform.machine() in ("x86_64", "AMD64"):
        environ.update(SETTINGS)
    elif mode == NATIVE:  # the environment as the process found it: the user's own values, or none
        for name, original in _ORIGINAL.items():
            if original is None:
                environ.pop(name, None)
            else:
                environ[name] = original
    return mode


@functools.cache
def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernels() -> dict:
    """What each library that can tell reports it runs with, in this process."""
    import torch

    out = {"aten": torch.backends.cpu.get_cpu_capability()}
    try:  # numpy's enabled AVX-512 dispatch targets (none once pinned)
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    avx512 = set(_NUMPY_AVX512.split())
    out["numpy_avx512"] = sorted(f for f in __cpu_dispatch__ if f in avx512 and __cpu_features__.get(f))
    try:
        from threadpoolctl import threadpool_info

        out["openblas"] = sorted({i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"})
    except ImportError:
        out["openblas"] = []
    return out


def _is_pinned(k: dict) -> bool:
    return k["aten"] == "AVX2" and not k["numpy_avx512"] and all(a == "Haswell" for a in k["openblas"])


def current(device: str | None = None) -> dict:
    """The numerics of this process: torch's version, the kernels' instruction set (``avx2`` only when every library
    that can be read back runs pinned; else ``native``), the CPU model, torch's threads and the device."""
    import torch

    k = kernels()
    isa = PINNED if os.environ.get(ENV) == PINNED and _is_pinned(k) else NATIVE
    device = str(device or "cpu")
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(torch.device(device).index or 0)})"
    elif not device.startswith("cuda"):
        device = "cpu"
    return {
        "torch": torch.__version__,
        "isa": isa,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "device": device,
        "kernels": k,
    }


# What must match for a stored run to be reused; the CPU model only where the kernels were the CPU's own.
REUSE_FIELDS = ("torch", "isa", "threads", "device")


def mismatch(stored: dict | None, now: dict, fields=REUSE_FIELDS) -> str:
    """Why a run computed with ``stored`` numerics is not the run this process would compute ('' when it is)."""
    if not stored:
        return "it records no numerics (made before they were recorded)"
    names = list(fields) + (["cpu"] if now.get("isa") == NATIVE and "isa" in fields else [])
    diffs = [f"{k} {stored.get(k)!r} (here {now.get(k)!r})" for k in names if stored.get(k) != now.get(k)]
    return ", ".join(diffs)


def add_argument(parser) -> None:
    """``--native-kernels`` on a command line. It acts while the package is imported (:func:`requested`), before
    torch loads; the parser only documents it and checks that it took effect."""
    parser.add_argument(
        FLAG,
        action="store_true",
        help=f"each library's fastest kernels for this CPU instead of the AVX2-pinned ones (also: {ENV}=native); "
        "results are marked native and never mixed with pinned ones",
    )


def check_argument(args) -> None:
    """Raise when ``--native-kernels`` was given but this process could not honour it (the package was imported
    before the command line was read, e.g. ``python -c``)."""
    if getattr(args, "native_kernels", False) and os.environ.get(ENV) != NATIVE:
        raise NumericsError(f"{FLAG} came too late for this process: set {ENV}=native in the environment instead")


def channels_last_safe(device) -> bool:
    """Whether channels-last convolutions may train on ``device``: not on the CPU while oneDNN is held to AVX2.
    Measured (torch 2.14.1, oneDNN 3.12, AMD EPYC with AVX-512, one thread): ResNet-20 training in channels-last with
    ``ONEDNN_MAX_CPU_ISA=AVX2`` (or ``AVX2_VNNI``) corrupts the heap ('double free or corruption', or a segmentation
    fault) within three steps; the same training in the contiguous format, or with oneDNN at its own ISA, runs."""
    return str(device).startswith("cuda") or os.environ.get("ONEDNN_MAX_CPU_ISA") != SETTINGS["ONEDNN_MAX_CPU_ISA"]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under Slurm or taskset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
