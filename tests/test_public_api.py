"""The four papers' packages are a library: importing one needs torch (and numpy), never the experiment harness;
the README's examples of using them in one's own code run as written."""

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ("tau", "continuous", "sss", "jeidnn")
MODEL_PACKAGES = ("baselines", *PAPERS)  # notebook 00 keeps its models apart from its harness too
# What the harness brings in: configuration, tables, notebooks, figures, the run store, datasets and the training loop.
HARNESS = (
    "yaml",
    "pandas",
    "papermill",
    "matplotlib",
    "seaborn",
    "sklearn",
    "torchvision",
    "repronets.runs.params",
    "repronets.runs.results",
    "repronets.core.data",
    "repronets.core.train",
    "repronets.report.plotting",
    "repronets.build.session",
    "repronets.build.pipeline",
)
USE_SECTION = "## Use the models in your own code"


def _loaded_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, f"{code!r} failed:\n{out.stderr[-2000:]}"
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def fresh_modules() -> dict:
    """The modules loaded by a fresh interpreter after each import of a paper (key: the package's name) and after
    each README example (key: its index), two interpreters at a time: each imports torch, and the nine one after
    another were 20 s of the fast tier's 90 s (measured 2026-12-05 on two cores; all nine at once: 24 s)."""
    codes = {paper: f"import repronets.{paper}" for paper in MODEL_PACKAGES}
    codes |= {index: code for index, (_, code) in enumerate(readme_examples())}
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(codes, pool.map(_loaded_after, codes.values())))


def harness_in(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m.split(".")[0] in HARNESS or m in HARNESS}


@pytest.mark.parametrize("paper", MODEL_PACKAGES)
def test_importing_a_paper_does_not_import_the_harness(paper, fresh_modules):
    loaded = fresh_modules[paper]
    assert f"repronets.{paper}" in loaded
    assert not harness_in(loaded)
    assert f"repronets.{paper}.experiment" not in loaded


@pytest.mark.parametrize("paper", MODEL_PACKAGES)
def test_public_names_exist(paper):
    import importlib

    module = importlib.import_module(f"repronets.{paper}")
    assert module.__all__, paper
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"repronets.{paper}.__all__ names what it does not define: {missing}"


def readme_examples() -> list[tuple[str, str]]:
    """(heading, code) of each python block in the README's section on using the models."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(USE_SECTION, 1)[1].split("\n## ", 1)[0]
    examples, heading = [], None
    for part in re.split(r"(^### .*$)", section, flags=re.M):
        if part.startswith("### "):
            heading = part[4:].strip()
        for code in re.findall(r"```python\n(.*?)```", part, flags=re.S):
            examples.append((heading, code))
    return examples


def test_readme_has_an_example_per_paper():
    examples = readme_examples()
    assert len(examples) == len(PAPERS)
    for paper, (_, code) in zip(PAPERS, examples):
        assert f"from repronets.{paper} import" in code


@pytest.mark.parametrize("index", range(len(PAPERS)))
def test_readme_example_runs_without_the_harness(index, fresh_modules):
    heading, _ = readme_examples()[index]
    harness = harness_in(fresh_modules[index])
    assert not harness, f"the example {heading!r} imported the harness: {sorted(harness)}"
