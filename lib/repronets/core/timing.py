"""Wall-clock timing of a statement, as ``torch.utils.benchmark`` measures it (warm-up, CUDA synchronisation,
median over blocks sized by ``blocked_autorange``): the one timer of the benchmarks and the complexity figures."""

from __future__ import annotations

import logging


def benchmark_timer(stmt: str, globals: dict, **kwargs):
    """A ``torch.utils.benchmark.Timer``.

    ``torch.utils.benchmark`` imports ``torch.utils.cpp_extension`` (for its valgrind wrapper, which we never use),
    and that module logs "No CUDA runtime is found, using CUDA_HOME=…" on every machine without CUDA. Nothing here
    compiles C++, so that one logger is quieted while the module is first imported.
    """
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        logger.setLevel(level)
    return Timer(stmt, globals=globals, **kwargs)
