#!/usr/bin/env bash
# Rebuild every figure and table:       ./run_all.sh [--profile smoke|quick|paper] [-j N] [--force] [NOTEBOOK ...]
# Run the tests:                         ./run_all.sh test [--fast] [PYTEST ARGS ...]  (--fast: unit tests, ~1 min)
# Build the results site:               ./run_all.sh site [--profile P] [--params-dir DIR]  (build/site/<profile>/)
# Check this machine reproduces them:   ./run_all.sh verify [--profile P] [--params-dir DIR]  (exit 1 on a difference)
# Check no verdict is noise:            ./run_all.sh stability --native-kernels | -j 1 [--profile P]  (exit 1 on a flip)
# Lint (ruff, as CI and the git hooks):  ./run_all.sh lint
# Refresh the lock files:                ./run_all.sh lock [--upgrade | --upgrade-package NAME ...]
#
# Environment: with none active, ./.venv is created and installed from requirements.lock (pinned, hash-checked: the
# environment that made the published figures). An active conda env or virtualenv is used as it is; the project is
# pip-installed into it with its loose ranges (pyproject.toml) if it cannot import repronets.
# REPRONETS_INSTALL=lock|ranges overrides that choice. The notebooks run in a kernel of the Python that runs this.
set -euo pipefail
cd "$(dirname "$0")"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    echo
fi

log() { echo "run_all.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }

LOCK=requirements.lock
# The results site's tools (the [site] extra), compiled on top of $LOCK with its versions as constraints.
SITE_LOCK=requirements-site.lock
# The interpreter the lock was compiled for (its wheels are cp311 builds for Linux x86-64).
LOCK_PYTHON=3.11

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    PY="$VIRTUAL_ENV/bin/python"
    INSTALL="${REPRONETS_INSTALL:-ranges}"
elif [[ -n "${CONDA_PREFIX:-}" && "${CONDA_DEFAULT_ENV:-base}" != "base" ]]; then
    PY="$CONDA_PREFIX/bin/python"
    INSTALL="${REPRONETS_INSTALL:-ranges}"
else
    PY=".venv/bin/python"
    INSTALL="${REPRONETS_INSTALL:-lock}"
    if [[ ! -x "$PY" ]]; then
        base="${REPRONETS_PYTHON:-python3}"
        if [[ "$INSTALL" == lock ]]; then
            have=$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
            if [[ "$have" != "$LOCK_PYTHON" ]]; then
                for candidate in "python$LOCK_PYTHON"; do
                    command -v "$candidate" >/dev/null && base="$candidate" && have=$LOCK_PYTHON
                done
            fi
            [[ "$have" == "$LOCK_PYTHON" ]] || die "$LOCK is for Python $LOCK_PYTHON on Linux x86-64 and $base is $have;" \
                "give an interpreter with REPRONETS_PYTHON=/path/to/python$LOCK_PYTHON, or install the loose ranges" \
                "of pyproject.toml with REPRONETS_INSTALL=ranges (other versions than the published figures' ones)"
        fi
        log "no environment active: creating .venv with $base (once; torch and its libraries are a few GB)"
        "$base" -m venv .venv
    fi
fi
[[ "$INSTALL" == lock || "$INSTALL" == ranges ]] || die "REPRONETS_INSTALL=$INSTALL: choose lock or ranges"
prefix=$("$PY" -c 'import sys; print(sys.prefix)')

if [[ "${1:-}" == "lock" ]]; then
    shift
    "$PY" -m uv --version >/dev/null 2>&1 || "$PY" -m pip install --quiet uv
    # uv keeps the versions already in the lock unless told to upgrade (--upgrade, --upgrade-package NAME).
    compile=("$PY" -m uv pip compile pyproject.toml --generate-hashes --quiet --python-version "$LOCK_PYTHON"
             --python-platform x86_64-manylinux_2_28 --custom-compile-command "./run_all.sh lock")
    "${compile[@]}" --extra all -o "$LOCK" "$@"
    exec "${compile[@]}" --extra site --constraint "$LOCK" -o "$SITE_LOCK" "$@"
fi

# (Re)install when the dependency list (or the lock) changed since the last install into this environment.
deps_hash=$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)
stamp="$prefix/.repronets-deps-$INSTALL-$deps_hash"
# The project must be importable from this checkout (a cached environment may hold another clone's install).
from_here() { "$PY" -c "import repronets, sys; sys.exit(not repronets.__file__.startswith('$PWD/'))" 2>/dev/null; }
if [[ -e "$stamp" ]] && ! from_here; then
    # the dependencies are current (the stamp); only the project is installed from elsewhere (or not at all)
    log "installing the project from this checkout into $prefix"
    "$PY" -m pip install --quiet --no-deps -e .
elif [[ ! -e "$stamp" ]]; then
    log "installing the project and its dependencies ($INSTALL) into $prefix"
    "$PY" -m pip install --quiet --upgrade pip
    if [[ "$INSTALL" == lock ]]; then
        "$PY" -m pip install --quiet --require-hashes -r "$LOCK"
        "$PY" -m pip install --quiet --no-deps -e .
    else
        # torchvision>=0.29 brings the torch it was built for; a torch installed on its own may not match it.
        "$PY" -m pip install --quiet "torchvision>=0.29" -e ".[all]"
    fi
    "$PY" -m ipykernel install --sys-prefix --name repronets --display-name "Python (repronets)" >/dev/null
    rm -f "$prefix"/.repronets-deps-*
    touch "$stamp"
fi

# The site's tools: for `site`, and for `test` (the tests build a site and open it in a browser).
if [[ "${1:-}" == "site" || "${1:-}" == "test" ]]; then
    site_stamp="$prefix/.repronets-site-$INSTALL-$(cat pyproject.toml "$LOCK" "$SITE_LOCK" | sha256sum | cut -c1-16)"
    if [[ ! -e "$site_stamp" ]]; then
        log "installing the results site's tools (the [site] extra, $INSTALL) into $prefix"
        if [[ "$INSTALL" == lock ]]; then
            "$PY" -m pip install --quiet --require-hashes -r "$SITE_LOCK"
        else
            "$PY" -m pip install --quiet -e ".[site]"
        fi
        rm -f "$prefix"/.repronets-site-*
        touch "$site_stamp"
    fi
fi
if [[ "${1:-}" == "site" ]]; then
    shift
    exec "$PY" -m repronets.build.site "$@"
fi
if [[ "${1:-}" == "verify" ]]; then
    shift
    exec "$PY" -m repronets.build.verify "$@"
fi
if [[ "${1:-}" == "stability" ]]; then
    shift
    exec "$PY" -m repronets.build.stability "$@"
fi
if [[ "${1:-}" == "lint" ]]; then
    "$PY" -m ruff check .
    exec "$PY" -m ruff format --check .
fi
if [[ "${1:-}" == "test" ]]; then
    shift
    if [[ "${1:-}" == "--fast" ]]; then  # the unit tests only (no notebooks, browser, cluster or workers)
        shift
        exec "$PY" -m pytest -m "not slow" "$@"
    fi
    exec "$PY" -m pytest "$@"
fi
exec "$PY" -m repronets.build.pipeline "$@"
