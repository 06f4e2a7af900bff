"""Every notebook's paper profile, end to end, as a dry run (``run_all.sh --profile paper --dry-run``) on datasets
written in the real on-disk formats (tests/fixtures/format_true): every grid point, table row, baseline and claim of
the paper profiles, with training cut to a step or two. A break that would otherwise show after hours on a GPU
shows here. The outputs are compared with what the same notebooks publish at the quick profile, so a dry run that
silently skipped a figure or a table fails."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow  # every notebook's paper profile, cut short: minutes

NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def dry_build(tmp_path_factory):
    sys.path.insert(0, str(FIXTURES / "format_true"))
    import format_true_datasets

    data = tmp_path_factory.mktemp("data")
    md5_table = format_true_datasets.write(data)
    root = tmp_path_factory.mktemp("project")
    for folder in ("notebooks", "params", "claims"):
        shutil.copytree(ROOT / folder, root / folder)
    env = {
        **os.environ,
        "REPRONETS_DATA": str(data),
        "REPRONETS_TEST_MD5": str(md5_table),  # the synthetic files' md5s for torchvision's (sitecustomize.py)
        "PYTHONPATH": os.pathsep.join([str(FIXTURES / "format_true"), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("REPRONETS_RUNS", None)  # a dry run keeps its runs in its own folder
    cmd = [sys.executable, "-m", "repronets.build.pipeline", "--root", str(root), "--profile", "paper", "--dry-run"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, env=env)
    return root, done


def test_every_paper_profile_completes_as_a_dry_run(dry_build):
    root, done = dry_build
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    figures = root / "build" / "dry-run" / "figures" / "paper"
    manifest = json.loads((figures / "MANIFEST.json").read_text())
    assert "dry run" in (figures / "CLAIMS.md").read_text()
    for nb in NOTEBOOKS:
        produced = {p.name for p in (figures / nb).iterdir()}
        # every output the quick profile publishes, its dataset (the digits) standing for any of the paper's
        for name in {p.name for p in (ROOT / "figures" / "quick" / nb).iterdir()} - {".build.json"}:
            pattern = re.compile(re.escape(name).replace("digits", "[a-z0-9_]+") + "$")
            assert any(pattern.match(p) for p in produced), f"{nb}: the dry run made no {name}"
        assert any(entry.startswith(f"{nb}/") for entry in manifest["outputs"]), nb
    # its runs are its own: nothing in the project's run store or published figures
    assert (root / "build" / "dry-run" / "runs" / "jeidnn_backbone").is_dir() and not (root / "runs").exists()
    assert not (root / "figures").exists()
