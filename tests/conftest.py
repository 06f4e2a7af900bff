import io
import os
import shutil
import sys
from pathlib import Path

import pytest
import repronets  # noqa: F401  (first: it pins the CPU kernels before any test module imports torch or numpy)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"  # present on the developers' machines and in CI; optional


@pytest.fixture(autouse=True)
def same_thread_count():
    """A test that changes torch's thread count in this process gives it back: later tests compare this process's
    numbers with subprocesses' at the default count (float sums depend on the threads)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch):
    """Every test gets its own run store and data root: nothing reads or writes the project's runs/ or data/."""
    monkeypatch.setenv("REPRONETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("REPRONETS_DATA", str(tmp_path / "data"))


@pytest.fixture
def fixture_schemas(monkeypatch):
    """Register the fixture notebooks' schema for this process and the kernels it starts."""
    names = ("fixture_a", "fixture_b")
    monkeypatch.setenv("REPRONETS_SCHEMAS", ";".join(f"{n}=fixture_schema:Params" for n in names))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(FIXTURES))
    return names


def set_fixture_params(root: Path, name: str, profile: str = "smoke", **values) -> None:
    """Write a fixture notebook's params file (tests/fixtures/fixture_schema.py), ``values`` over the defaults."""
    import yaml

    path = root / "params" / profile / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"points": 4, "fail": False, "sleep_s": 0.0} | values))


@pytest.fixture
def fixture_project(tmp_path, fixture_schemas):
    """A throw-away project of the two fixture notebooks (seconds to build), not built yet."""
    from fixtures.make_fixture_notebook import write as write_notebook
    from repronets.build import pipeline

    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    for name in fixture_schemas:
        write_notebook(root / "notebooks" / f"{name}.ipynb")
        set_fixture_params(root, name)
    return pipeline.Project(root)


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory):
    """One smoke build of every notebook in a copy of the project, shared by the tests that only read its outputs
    (the notebooks' outputs, the results site): (project, exit status, the build's report)."""
    from repronets.build import pipeline

    root = tmp_path_factory.mktemp("smoke_project")
    for folder in ("notebooks", "params", "claims", "docs"):
        shutil.copytree(ROOT / folder, root / folder)
    shutil.copy(ROOT / "README.md", root / "README.md")
    project, out = pipeline.Project(root), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:  # the session's own store and data root (isolated_runs is per test)
        patch.setenv("REPRONETS_RUNS", str(root / "runs"))
        patch.setenv("REPRONETS_DATA", str(root / "data"))
        code = pipeline.build(project, "smoke", [], out=out)
    return project, code, out.getvalue()


@pytest.fixture
def mnist_root(tmp_path):
    """A writable copy of the real MNIST raw files, when the shared data folder is beside the checkout."""
    source = SHARED_DATA / "MNIST"
    if not source.exists():
        pytest.skip(f"real MNIST not present at {source}")
    root = tmp_path / "mnist_root"
    shutil.copytree(source, root / "MNIST")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def python() -> str:
    return sys.executable
