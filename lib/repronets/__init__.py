"""repronets: the reproducible companion to four deep-learning papers.

The library core, shared by all four papers:

- :mod:`repronets.params`    typed parameter schemas per notebook, YAML loading, clear errors
- :mod:`repronets.data`      datasets by name, held as tensors in memory
- :mod:`repronets.train`     the training loop: devices, seeds, progress, checkpoints, resume
- :mod:`repronets.results`   run keys, atomic result files, cached runs, DataFrames
- :mod:`repronets.plotting`  one style; figures as PNG+PDF; tables as Markdown/LaTeX/CSV
- :mod:`repronets.session`   what a notebook calls first: validated params, output folder, provenance
- :mod:`repronets.pipeline`  papermill execution, manifest, incremental rebuilds (``run_all.sh``)
- :mod:`repronets.numerics`  the CPU kernels every process computes with (pinned to AVX2 unless asked otherwise)

Importing the package pins the CPU kernels (:func:`repronets.numerics.pin`): import it before torch and numpy.
"""

from . import numerics as _numerics

_numerics.pin()

__version__ = "0.1.0"
