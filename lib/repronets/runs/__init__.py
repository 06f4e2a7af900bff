"""Runs and their store, above :mod:`repronets.core`: what a run is named by, where it is computed, what it records.

- :mod:`.params`      typed parameter schemas per notebook, YAML loading, clear errors
- :mod:`.results`     run keys, the run store (atomic, checksummed results, cached runs), tasks for executors
- :mod:`.executors`   where missing runs are computed: inline, local processes, Slurm (submitit)
- :mod:`.provenance`  git state, package versions, device: what every result and output records
- :mod:`.cli`         ``python -m repronets.<paper>``: an experiment without Jupyter
"""
