"""The library's shared pieces, the lowest layer: everything else may import them, they import nothing above.

- :mod:`.registry`    string registries of named factories (models, schemes, rules)
- :mod:`.counting`    parameters and multiply-adds of a model
- :mod:`.numerics`    the CPU kernels every process computes with (pinned to AVX2 unless asked), usable cores
- :mod:`.fileio`      atomic writes, disk-full and unwritable-folder errors, the project's root
- :mod:`.timing`      a benchmark timer
- :mod:`.data`        datasets by name, held as tensors in memory (:mod:`.uci`: paper 3's tables)
- :mod:`.transforms`  preprocessing and augmentation on tensors
- :mod:`.train`       the training loop: devices, seeds, progress, checkpoints, resume
- :mod:`.members`     many small models trained as one (vmap): the shared part of grouped runs
"""
