"""The papermill path of run_all.sh, exercised on fixture notebooks in a throw-away project."""

import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pandas as pd
import psutil
import pytest
import yaml
from conftest import set_fixture_params
from repronets.build import pipeline
from repronets.core import numerics

pytestmark = pytest.mark.slow


set_params = set_fixture_params


@pytest.fixture
def project(fixture_project):
    return fixture_project


def build(project, *names, **kw):
    out = io.StringIO()
    code = pipeline.build(project, kw.pop("profile", "smoke"), list(names), out=out, **kw)
    return code, out.getvalue()


def test_build_publishes_outputs_and_manifest_then_skips_until_an_input_changes(project):
    block = "<!-- generated: table figures/smoke/fixture_a/kernel.md -->\n<!-- end generated -->\n"
    (project.root / "README.md").write_text("# Fixture\n" + block)
    code, out = build(project)
    assert "README.md: its generated blocks were rewritten" in out  # the README quotes the new table
    assert "kernel" in (project.root / "README.md").read_text().split("<!-- generated")[1]
    assert code == 0, out
    published = project.root / "figures" / "smoke" / "fixture_a"
    for f in ("curve.png", "curve.pdf", "kernel.md", "kernel.tex", "kernel.csv", "fixture_a.ipynb"):
        assert (published / f).exists(), f
    # The kernel ran the interpreter that ran the build, whatever kernelspecs exist elsewhere.
    assert pd.read_csv(published / "kernel.csv").executable[0] == sys.executable
    executed = nbformat.read(published / "fixture_a.ipynb", 4)
    assert executed.metadata.papermill.parameters["points"] == 4 and any(c.get("outputs") for c in executed.cells)
    manifest = json.loads((project.root / "figures" / "smoke" / "MANIFEST.json").read_text())
    entry = manifest["outputs"]["fixture_a/curve.png"]
    for key in (
        "notebook",
        "params_file",
        "params",
        "input_hash",
        "commit",
        "dirty",
        "versions",
        "started",
        "finished",
        "duration_s",
        "device",
        "data",
    ):
        assert key in entry, key
    assert entry["params"] == {"points": 4, "fail": False, "sleep_s": 0.0} and entry["data"] == ["synthetic"]
    assert entry["params_file"] == "params/smoke/fixture_a.yaml" and "fixture_b/kernel.csv" in manifest["outputs"]

    code, out = build(project)
    assert code == 0 and "skip fixture_a: up to date" in out and "skip fixture_b: up to date" in out

    set_params(project.root, "fixture_a", points=6)
    code, out = build(project)
    assert "run  fixture_a" in out and "skip fixture_b" in out
    assert pd.read_csv(published / "kernel.csv").points[0] == 6

    code, out = build(project, "fixture_b", force=True)
    assert code == 0 and "run  fixture_b" in out and "fixture_a" not in out.split("notebook")[0]


def test_a_failing_notebook_does_not_stop_the_others_nor_damage_published_outputs(project):
    assert build(project, "fixture_a")[0] == 0
    published = project.root / "figures" / "smoke" / "fixture_a"
    before = {p.name: p.read_bytes() for p in published.iterdir()}
    set_params(project.root, "fixture_a", fail=True)
    code, out = build(project)
    assert code == 1
    assert "FAILED fixture_a (failed): ZeroDivisionError: fixture asked to fail" in out
    partial = project.root / "build" / "smoke" / "fixture_a" / "fixture_a.ipynb"
    assert str(partial) in out and "1 of 2 notebook(s) failed: fixture_a" in out
    assert "ZeroDivisionError" in partial.read_text()
    assert {p.name: p.read_bytes() for p in published.iterdir()} == before
    assert (project.root / "figures" / "smoke" / "fixture_b" / "curve.png").exists()
    manifest = json.loads((project.root / "figures" / "smoke" / "MANIFEST.json").read_text())
    assert manifest["outputs"]["fixture_a/curve.png"]["params"]["fail"] is False


def test_a_parameter_set_builds_its_own_notebooks_into_its_own_folder(project):
    """params/real_mnist-style sets: only the notebooks the set has files for, outputs beside (not over) the
    profile's own, the set's file in the manifest."""
    assert build(project, "fixture_a")[0] == 0
    own = (project.root / "figures" / "smoke" / "fixture_a" / "kernel.csv").read_bytes()
    variant = project.root / "params" / "variant"
    (variant / "smoke").mkdir(parents=True)
    (variant / "smoke" / "fixture_b.yaml").write_text(yaml.safe_dump({"points": 7, "fail": False, "sleep_s": 0.0}))
    in_set = pipeline.Project(project.root, variant)
    code, out = build(in_set)
    assert code == 0 and "run  fixture_b" in out and "fixture_a" not in out
    published = project.root / "figures" / "variant" / "smoke"
    assert pd.read_csv(published / "fixture_b" / "kernel.csv")["points"].item() == 7
    manifest = json.loads((published / "MANIFEST.json").read_text())
    assert manifest["outputs"]["fixture_b/kernel.csv"]["params_file"] == "params/variant/smoke/fixture_b.yaml"
    assert (project.root / "figures" / "smoke" / "fixture_a" / "kernel.csv").read_bytes() == own
    assert not (project.root / "figures" / "smoke" / "fixture_b").exists()
    elsewhere = project.root.parent / "elsewhere"  # a parameter set outside the checkout: recorded by its path
    (elsewhere / "smoke").mkdir(parents=True)
    (elsewhere / "smoke" / "fixture_b.yaml").write_text((variant / "smoke" / "fixture_b.yaml").read_text())
    assert build(pipeline.Project(project.root, elsewhere))[0] == 0
    manifest = json.loads((project.root / "figures" / "elsewhere" / "smoke" / "MANIFEST.json").read_text())
    assert manifest["outputs"]["fixture_b/kernel.csv"]["params_file"] == str(elsewhere / "smoke" / "fixture_b.yaml")
    with pytest.raises(SystemExit):  # argparse's error: the folder is named before anything runs
        pipeline.main(
            ["--profile", "smoke", "--params-dir", str(project.root / "nowhere"), "--root", str(project.root)]
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--profile", "fast"], "unknown profile 'fast'"),
        (["--profile", "smoke", "nope"], "unknown notebook(s) ['nope']"),
        (["--profile", "quick"], "params file missing"),
    ],
)
def test_bad_arguments_stop_before_anything_runs(project, capsys, args, message):
    code = pipeline.main(args + ["--root", str(project.root)])
    assert code == 2 and message in capsys.readouterr().err
    assert not (project.root / "build").exists()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"pointz": 3}, "unknown key 'pointz' (did you mean 'points'?)"),
        ({"points": "many"}, "key 'points': expected an integer"),
        ({"points": 1}, "key 'points': got 1, out of range"),
    ],
)
def test_bad_params_name_file_and_key_before_anything_runs(project, capsys, values, message):
    set_params(project.root, "fixture_b", **values)
    code = pipeline.main(["--profile", "smoke", "--root", str(project.root)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "params/smoke/fixture_b.yaml" in err and "nothing was run" in err
    assert not (project.root / "build").exists()


def test_a_second_build_of_the_same_profile_is_refused(project, capsys):
    folder = project.root / "figures" / "smoke"
    folder.mkdir(parents=True)
    with open(folder / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 4242")
        held.flush()
        code = pipeline.main(["--profile", "smoke", "--root", str(project.root)])
    assert code == 2 and "another build of this profile is running (pid 4242)" in capsys.readouterr().err


def test_unwritable_output_folder(project, capsys):
    (project.root / "figures").write_text("a file where the folder should be")
    assert pipeline.main(["--profile", "smoke", "--root", str(project.root)]) == 2
    assert "is not writable" in capsys.readouterr().err


def kernels():
    return {
        p.pid for p in psutil.process_iter(["cmdline"]) if "ipykernel_launcher" in " ".join(p.info["cmdline"] or [])
    }


def test_timeout_kills_a_hanging_notebook_and_its_kernel(project):
    before = kernels()
    set_params(project.root, "fixture_a", sleep_s=120.0)
    t0 = time.perf_counter()
    code, out = build(project, "fixture_a", timeout_s=10)
    assert code == 1 and "FAILED fixture_a (timeout)" in out and time.perf_counter() - t0 < 60
    assert kernels() <= before, "the timed-out notebook's kernel is still running"


def test_a_killed_build_takes_its_kernels_down(project):
    before = kernels()
    set_params(project.root, "fixture_a", sleep_s=120.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "repronets.build.pipeline", "--profile", "smoke", "fixture_a", "fixture_b", "-j", "1"]
        + ["--root", str(project.root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not kernels() - before:
        time.sleep(0.5)
    assert kernels() - before, "no kernel started"
    proc.kill()  # SIGKILL: no handler runs in the pipeline process
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and kernels() - before:
        time.sleep(0.5)
    assert not kernels() - before, "an orphaned kernel survived the killed build"
    set_params(project.root, "fixture_a")
    code, out = build(project, "fixture_a")  # the lock died with the process: a new build goes ahead
    assert code == 0 and "ok   fixture_a" in out


def test_parallel_notebooks(project):
    code, out = build(project, jobs_in_parallel=2)
    assert code == 0, out
    assert out.count("ok   fixture_") == 2


def test_interrupt_stops_the_build_and_a_rerun_finishes_it(project, tmp_path):
    before = kernels()
    set_params(project.root, "fixture_a", sleep_s=60.0)
    temp = tmp_path / "tmp"  # the build's temporary folder: the kernel's sockets and connection file go there
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "repronets.build.pipeline", "--profile", "smoke", "fixture_a", "fixture_b", "-j", "1"]
        + ["--root", str(project.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
        # Ctrl-C's default action, even where this test runs with SIGINT ignored (a command started with `&` by a
        # non-interactive shell inherits that, and Python then installs no KeyboardInterrupt handler)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    log = project.root / "build" / "smoke" / "fixture_a.log"
    # papermill logs each cell's number as it starts; the last one sleeps (one more: the injected parameters cell)
    sleeping = f"Executing Cell {len(nbformat.read(project.root / 'notebooks' / 'fixture_a.ipynb', 4).cells) + 1}-"
    while time.time() < deadline and not (log.exists() and sleeping in log.read_text()):
        time.sleep(0.2)
    assert sleeping in log.read_text(), log.read_text()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # an impatient second Ctrl-C during the cleanup
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "notebook  " in out and "run the same command again" in out, out
    assert "interrupted" in out and not (project.root / "figures" / "smoke" / "fixture_a").exists()
    never_started = out.split("FAILED fixture_b (interrupted): not started")[1].split("FAILED")[0]
    assert "partial notebook" not in never_started and "log:" not in never_started  # no paths that do not exist
    assert not kernels() - before
    assert not list(temp.iterdir()), "the interrupted kernel left files behind"
    set_params(project.root, "fixture_a")
    code, out = build(project, "fixture_a")
    assert code == 0 and "ok   fixture_a" in out


def test_help_and_list(project, capsys):
    with pytest.raises(SystemExit) as e:
        pipeline.main(["--help"])
    assert e.value.code == 0 and "--profile" in capsys.readouterr().out
    assert pipeline.main(["--list", "--root", str(project.root)]) == 0
    assert capsys.readouterr().out.split() == ["fixture_a", "fixture_b"]


def test_a_failure_while_publishing_is_reported_and_the_others_still_build(project, monkeypatch):
    real_publish = pipeline._publish

    def publish(job):
        if job.notebook == "fixture_a":
            raise OSError(28, "No space left on device")
        return real_publish(job)

    monkeypatch.setattr(pipeline, "_publish", publish)
    code, out = build(project)
    assert code == 1 and "FAILED fixture_a (failed): pipeline error: OSError" in out and "ok   fixture_b" in out
    assert "failed fixture_a in" in out  # the status column does not run into the name


def test_git_state_ignores_the_builds_own_outputs(tmp_path):
    import subprocess

    from repronets.runs import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "table.md").write_text("a")
    (tmp_path / "code.py").write_text("x = 1")
    (tmp_path / "README.md").write_text("<!-- generated: ledger figures/x -->")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert provenance.git_state(tmp_path)["dirty"] is False
    (tmp_path / "figures" / "table.md").write_text("b")  # a published output: still a clean checkout
    (tmp_path / "README.md").write_text("<!-- generated: ledger figures/y -->")  # its blocks, rewritten by a build
    assert provenance.git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2")
    assert provenance.git_state(tmp_path)["dirty"] is True


def test_by_default_notebooks_run_side_by_side_with_one_thread_each_longest_first(project, monkeypatch):
    monkeypatch.setattr(numerics, "usable_cores", lambda: 2)
    assert [pipeline.default_parallel(n) for n in (1, 2, 5)] == [1, 2, 3]  # one more than cores, at most n
    set_params(project.root, "fixture_b", sleep_s=1.5)
    code, out = build(project)
    assert code == 0, out
    for name in ("fixture_a", "fixture_b"):  # two notebooks, two cores: both at once, one thread each
        table = pd.read_csv(project.root / "figures" / "smoke" / name / "kernel.csv", dtype=str)
        assert table.threads[0] == "1", name
    assert pipeline.previous_durations(project, "smoke")["fixture_b"] > 1.5
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    code, out = build(project, force=True, jobs_in_parallel=1)  # -j 1: in order, all cores to each
    assert out.index("run  fixture_b") < out.index("run  fixture_a"), out  # the slower one starts first
    assert pd.read_csv(project.root / "figures" / "smoke" / "fixture_a" / "kernel.csv", dtype=str).threads[0] == "unset"


def test_longest_first_counts_the_runs_a_cached_build_did_not_train(project):
    entry = lambda nb, duration, runs: {"notebook": nb, "duration_s": duration, "runs": runs}  # noqa: E731
    run = lambda key, s: {"kind": "k", "key": key, "wall_time_s": s}  # noqa: E731
    manifest = {
        "profile": "smoke",
        "outputs": {
            "a/f.png": entry("a", 5.0, [run("1", 100.0), run("2", 50.0)]),
            "a/t.md": entry("a", 5.0, [run("2", 50.0)]),  # one run shown twice counts once
            "b/t.md": entry("b", 80.0, [run("3", 10.0)]),
            "c/c.md": entry("c", 3.0, []),
        },
    }
    (project.root / "figures" / "smoke").mkdir(parents=True)
    (project.root / "figures" / "smoke" / "MANIFEST.json").write_text(json.dumps(manifest))
    assert pipeline.previous_durations(project, "smoke") == {"a": 150.0, "b": 80.0, "c": 3.0}


def test_an_unwritable_run_store_is_named_before_any_notebook_starts(project, monkeypatch, capsys):
    blocker = project.root / "not_a_folder"
    blocker.write_text("a file where the run store's parent should be")
    monkeypatch.setenv("REPRONETS_RUNS", str(blocker / "runs"))
    assert pipeline.main(["--profile", "smoke", "--root", str(project.root)]) == 2
    err = capsys.readouterr().err
    assert f"run store {blocker / 'runs'} is not writable" in err and "REPRONETS_RUNS" in err
    assert not (project.root / "build" / "smoke" / "fixture_a.log").exists()
