"""Bad input, concurrency and hand edits: each case of the bad-input issue (#25) as a row that can fail.

The rule for all of them: an error names the file, key or variable at fault and the way out, before any work where it
can; nothing finished is lost or recomputed; nothing wrong is published. Each row does what the case did, then checks
the exit status or error, the words of its message and what must be unchanged. Cases that need a real filesystem
condition (a full disk, a read-only folder) mount a tmpfs (as root) and skip with the reason where they cannot.
"""

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import set_fixture_params
from repronets.build import pipeline, site, verify
from repronets.core import data, fileio
from repronets.report import claims
from repronets.runs import executors, params
from repronets.runs import results as results_mod
from repronets.runs.results import RunStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    """A copy of the project's notebooks, parameters and claim files, to break."""
    for folder in ("notebooks", "params", "claims"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return pipeline.Project(tmp_path)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} no longer holds {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _duplicate_seeds(project):
    _edit(project.params_dir / "smoke" / "00_data_and_baselines.yaml", "seeds: [0]", "seeds: [0, 0, 0]")


def _latin1_params(project):
    path = project.params_dir / "smoke" / "00_data_and_baselines.yaml"
    path.write_bytes(path.read_bytes() + "# café\n".encode("latin-1"))


def _claim_key_twice(project):
    _edit(
        project.root / "claims" / "01_tau_speedup.yaml",
        "  comparison: above\n",
        "  comparison: above\n  comparison: below\n",
    )


def _claim_typo(project):
    _edit(project.root / "claims" / "01_tau_speedup.yaml", "  margin:", "  margn:")


PLAN_CASES = {
    # case: (how to break the project, the notebook, words the BuildError must contain)
    "duplicate seeds are refused, naming the key": (
        _duplicate_seeds,
        "00_data_and_baselines",
        ["'seeds'", "0 given more than once"],
    ),
    "a params file not in UTF-8 names the file": (
        _latin1_params,
        "00_data_and_baselines",
        ["00_data_and_baselines.yaml", "UTF-8"],
    ),
    "a claim file's key given twice is refused": (_claim_key_twice, "01_tau_speedup", ["01_tau_speedup.yaml", "twice"]),
    "a claim file's unknown key is found before any work": (
        _claim_typo,
        "01_tau_speedup",
        ["01_tau_speedup.yaml", "margn"],
    ),
}


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
def test_a_broken_input_stops_the_build_before_any_notebook_runs(project, case):
    breaks, notebook, words = PLAN_CASES[case]
    breaks(project)
    with pytest.raises(pipeline.BuildError) as e:
        pipeline.plan(project, "smoke", [notebook])
    for word in words:
        assert word in str(e.value), (case, str(e.value))


def test_editing_a_claim_file_rebuilds_its_notebook(project):
    before = pipeline.input_hash(project, "01_tau_speedup", "smoke")
    _edit(project.root / "claims" / "01_tau_speedup.yaml", "  margin: 0", "  margin: 1")
    assert pipeline.input_hash(project, "01_tau_speedup", "smoke") != before


@pytest.mark.parametrize("text", ["garbage", "local", '["local"]', '{"name": "nowhere"}'])
def test_a_bad_executor_variable_is_named(monkeypatch, text):
    monkeypatch.setenv(executors.ENV, text)
    with pytest.raises(ValueError, match=f"{executors.ENV}="):
        executors.ExecutorConfig.from_env()


def test_a_negative_wait_timeout_is_refused():
    with pytest.raises(ValueError, match="wait_timeout_s"):
        executors.ExecutorConfig(name="local", wait_timeout_s=-5)


@pytest.mark.parametrize("main", [pipeline.main, verify.main])
def test_a_negative_notebook_timeout_is_refused(main, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--profile", "smoke", "--timeout", "-5"])
    assert e.value.code == 2 and "--timeout -5" in capsys.readouterr().err


def test_list_parameters_hold_each_value_once():
    with pytest.raises(params.ParamsError, match=r"key 'datasets': 'digits' given more than once"):
        params.validate(
            params.schema_for("00_data_and_baselines"),
            {**params.as_dict(params.load("00_data_and_baselines", "smoke")), "datasets": ["digits", "digits"]},
            source="test",
        )
    assert claims.load_claims(ROOT / "claims" / "01_tau_speedup.yaml")  # the real files stay valid


# ------------------------------------------------------------------------------------------------------------------
# The issue's cases that need more than a plan: each test names its case; the last test checks none is missing.

COVERED: dict[int, str] = {}


def case(number: int, title: str):
    """Register a test as the row of the issue's case ``number``."""

    def register(test):
        COVERED[number] = f"{test.__name__}: {title}"
        return test

    return register


for _number, _title in ((3, "duplicate seeds"), (5, "params not UTF-8"), (16, "claim key typo"), (17, "key twice")):
    case(_number, _title)(test_a_broken_input_stops_the_build_before_any_notebook_runs)
case(2, "an edited claim file rebuilds")(test_editing_a_claim_file_rebuilds_its_notebook)
case(8, "REPRONETS_EXECUTOR named")(test_a_bad_executor_variable_is_named)
case(20, "--timeout -5 refused")(test_a_negative_notebook_timeout_is_refused)


@pytest.fixture
def built(fixture_project):
    """The fixture notebooks' project (conftest.fixture_project), built once at the smoke profile."""
    project = fixture_project
    out = io.StringIO()
    assert pipeline.build(project, "smoke", [], out=out) == 0, out.getvalue()
    return project


def _main(main, argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def mount_tmpfs(tmp_path):
    """Mount a tmpfs (root only): ``mount(folder, size)``, unmounted afterwards; skips where mount is refused."""
    mounted = []

    def mount(folder: Path, size: str = "96k", read_only: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (root and CAP_SYS_ADMIN needed): {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
@case(1, "two site builds at once")
def test_two_site_builds_at_once_take_turns_and_leave_a_whole_site(built):
    results, errors = [], []

    def one():
        try:
            results.append(site.build(built, "smoke"))
        except Exception as e:  # any error is the failure being tested for
            errors.append(e)

    for _ in range(2):
        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(results) == 4
    out = built.site("smoke")
    assert (out / "index.html").is_file() and (out / ".doctrees").is_dir()
    assert {p.name for p in (out / "notebooks").glob("*.html")} == {"fixture_a.html", "fixture_b.html"}
    assert not list(out.parent.glob(".smoke.old-*"))  # the replaced site is gone, not left beside it


@pytest.mark.slow
@case(4, "relative REPRONETS_RUNS / REPRONETS_DATA")
@pytest.mark.parametrize("variable", ["REPRONETS_RUNS", "REPRONETS_DATA", "REPRONETS_CACHE"])
def test_relative_path_variables_are_made_absolute_for_every_process(tmp_path, variable):
    env = {**os.environ, variable: "relative/folder"}
    code = "import os, repronets, subprocess, sys; print(os.environ[sys.argv[1]])"
    done = subprocess.run([sys.executable, "-c", code, variable], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "relative" / "folder")  # what the kernels (in notebooks/) inherit


@case(6, "a PNG copied over an unpacked IDX file")
def test_a_file_that_is_not_idx_is_named(mnist_root):
    data.load("mnist", "test", root=mnist_root, download=False)  # unpacks the archives
    labels = mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(data.DatasetNotFound, match=rf"{labels} is not an IDX file .*delete it.*unpacked again"):
        data.load("mnist", "test", root=mnist_root, download=False)
    labels.unlink()  # the way out the message gives
    assert len(data.load("mnist", "test", root=mnist_root, download=False).y) == 10000


@case(7, "the run store's disk full")
def test_a_full_run_store_says_disk_full_naming_the_file(tmp_path, mount_tmpfs):
    store = RunStore(mount_tmpfs(tmp_path / "full", "96k"))
    big = {"tensors": {"w": torch.zeros(64, 1024)}}  # 256 KiB: more than the disk holds
    with pytest.raises(OSError, match=r"no space left to write it .*bytes free on the disk of") as e:
        store.run("k", {"seed": 0}, lambda params, checkpoint: dict(big, acc=1.0))
    assert e.value.errno == errno.ENOSPC and str(tmp_path / "full") in str(e.value)
    assert not list((tmp_path / "full").rglob("*.tmp")) and store.load("k", {"seed": 0}) is None  # nothing half


@pytest.mark.slow
@case(7, "the build folder's disk full")
def test_a_failure_on_a_full_disk_says_so(built, monkeypatch):
    monkeypatch.setattr(fileio, "disk_nearly_full", lambda folder: f"12 bytes free on the disk of {folder}")
    set_fixture_params(built.root, "fixture_a", fail=True)
    out = io.StringIO()
    assert pipeline.build(built, "smoke", ["fixture_a"], out=out) == 1
    assert "the disk is full: 12 bytes free" in out.getvalue()


@pytest.mark.slow
@case(9, "--executor slurm without Slurm")
@pytest.mark.parametrize(
    "tools, words", [(False, "no Slurm (sbatch, srun, sinfo not on PATH)"), (True, "does not answer")]
)
def test_slurm_executor_without_slurm_stops_before_any_notebook(built, capsys, monkeypatch, tools, words):
    pytest.importorskip("submitit")
    bin_dir = built.root / "bin"  # a PATH without Slurm, or with its tools but no controller answering them
    bin_dir.mkdir()
    if tools:
        for tool in ("sbatch", "srun", "sinfo"):
            (bin_dir / tool).write_text(
                "#!/bin/sh\necho 'sinfo: error: Unable to contact slurm controller' >&2\nexit 1\n"
            )
            (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    log = built.build("smoke") / "fixture_a.log"
    before = log.stat().st_mtime_ns
    argv = ["--profile", "smoke", "--force", "--executor", "slurm", "--root", str(built.root)]
    code, text = _main(pipeline.main, argv, capsys)
    assert code == 2 and "--executor slurm" in text and words in text and "--executor local" in text
    assert log.stat().st_mtime_ns == before  # no notebook started


@pytest.mark.slow
@case(10, "--wait-timeout shorter than the runs")
def test_a_wait_timeout_on_the_local_executor_is_an_executor_error(tmp_path):
    config = executors.ExecutorConfig("local", workers=1, wait_timeout_s=0.5)
    tasks = [results_mod.RunTask(str(tmp_path), "slow", {"seed": s}, _sleep_run, executor="local") for s in range(2)]
    with pytest.raises(executors.ExecutorError, match=r"gave up after 0.5 s .*2 of 2 local task\(s\) unfinished"):
        executors.execute(config, tasks, tmp_path / "_jobs")
    assert RunStore(tmp_path).load("slow", {"seed": 0}) is not None  # the running one finished into the store


def _sleep_run(params, checkpoint):
    time.sleep(2)
    return {"acc": 1.0}


@pytest.mark.slow
@case(11, "--executor-config missing or not YAML")
@pytest.mark.parametrize("content, words", [(None, "cannot be read"), ("a: [1, 2\n", "not valid YAML")])
def test_a_bad_executor_config_file_is_named(built, capsys, content, words):
    path = built.root / "executor.yaml"
    if content is not None:
        path.write_text(content)
    argv = ["--profile", "smoke", "--executor-config", str(path), "--root", str(built.root)]
    code, text = _main(pipeline.main, argv, capsys)
    assert code == 2 and f"--executor-config {path}" in text and words in text


@pytest.mark.slow
@case(12, "a truncated MANIFEST.json")
def test_a_truncated_manifest_is_named_before_any_work(built, capsys):
    manifest = built.figures("smoke") / "MANIFEST.json"
    manifest.write_text(manifest.read_text()[:200])
    before = _snapshot(built.figures("smoke"))
    code, text = _main(pipeline.main, ["--profile", "smoke", "--force", "--root", str(built.root)], capsys)
    assert code == 2 and "MANIFEST.json is not a readable manifest" in text and "git checkout" in text
    assert _snapshot(built.figures("smoke")) == before  # nothing was built or published
    code, text = _main(site.main, ["--profile", "smoke", "--root", str(built.root)], capsys)
    assert code == 2 and "MANIFEST.json is not a readable manifest" in text


@pytest.mark.slow
@case(13, "build/ read-only")
def test_a_read_only_build_folder_is_named_by_the_site(built, capsys, mount_tmpfs):
    shutil.rmtree(built.root / "build")
    mount_tmpfs(built.root / "build", "1m", read_only=True)
    code, text = _main(site.main, ["--profile", "smoke", "--root", str(built.root)], capsys)
    assert code == 2 and "run_all.sh site: error:" in text and str(built.root / "build") in text
    assert "Traceback" not in text and "--out" in text


@pytest.mark.slow
@case(14, "outputs removed during a build; other profiles' README blocks")
def test_outputs_gone_after_publishing_are_reported_and_other_profiles_blocks_are_kept(built, monkeypatch):
    quick_block = "<!-- generated: table figures/quick/x/t.md -->\nthe quick profile's table\n<!-- end generated -->\n"
    (built.root / "README.md").write_text("# Fixture\n" + quick_block)
    publish = pipeline._publish

    def publish_then_lose(job):
        records = publish(job)
        shutil.rmtree(job.published)  # as `rm -rf figures/` while the build runs
        return records

    monkeypatch.setattr(pipeline, "_publish", publish_then_lose)
    out = io.StringIO()
    assert pipeline.build(built, "smoke", ["fixture_a"], force=True, out=out) == 1
    assert "its published outputs are gone" in out.getvalue() and "lost" in out.getvalue()
    assert (built.root / "README.md").read_text() == "# Fixture\n" + quick_block  # a smoke build leaves quick's
    manifest = json.loads((built.figures("smoke") / "MANIFEST.json").read_text())["outputs"]
    assert all((built.figures("smoke") / name).exists() for name in manifest if name.startswith("fixture_b/"))


@case(15, "a result.json edited by hand")
def test_an_edited_result_is_refused_and_the_store_check_names_it(tmp_path, capsys):
    store = RunStore(tmp_path)
    params = {"lr": 0.1, "seed": 0}
    store.run("k", params, lambda p, c: {"final_test_acc": 0.5})
    assert _main(results_mod.main, ["check", str(tmp_path)], capsys)[0] == 0
    file = store.folder("k", params) / "result.json"
    record = json.loads(file.read_text())
    record["result"]["final_test_acc"] = 0.999
    file.write_text(json.dumps(record))
    with pytest.raises(results_mod.ResultsError, match=rf"{file}: its contents differ from the checksum"):
        store.load("k", params)
    code, text = _main(results_mod.main, ["check", str(tmp_path)], capsys)
    assert code == 1 and str(file) in text and "1 damaged or edited" in text
    del record["checksum"]  # a result from before checksums, its parameters edited
    record["result"]["final_test_acc"], record["params"]["lr"] = 0.5, 0.2
    file.write_text(json.dumps(record))
    with pytest.raises(results_mod.ResultsError, match="its parameters hash to"):
        store.load("k", params)


@case(18, "a claim listed for a profile that measures nothing for it")
def test_a_listed_but_unmeasured_claim_says_so(tmp_path):
    path = tmp_path / "claims.yaml"
    entry = dict(yaml.safe_load((ROOT / "claims" / "01_tau_speedup.yaml").read_text())["claims"][0])
    path.write_text(yaml.safe_dump({"claims": [{**entry, "profiles": ["quick", "paper"]}]}))
    ledger = claims.Ledger(claims.load_claims(path), "quick")
    assert ledger.unmeasured() == [entry["id"]]
    (row,) = ledger.rows()
    assert (
        row["verdict"] == claims.VERDICTS[3]
        and "listed for the quick profile, but its notebook measured nothing" in (row["reason"])
    )
    assert "measured at: quick, paper" in claims.Ledger(claims.load_claims(path), "smoke").rows()[0]["reason"]


@case(19, "the same notebook named twice")
def test_a_notebook_named_twice_runs_once(project):
    jobs = pipeline.plan(project, "smoke", ["00_data_and_baselines", "00_data_and_baselines"])
    assert [j.notebook for j in jobs] == ["00_data_and_baselines"]


@case(21, "computed runs reported as computed; a read-only store of finished runs")
def test_runs_computed_in_groups_are_not_reported_cached(tmp_path):
    store = RunStore(tmp_path)
    grid = [{"seed": s, "group": 1} for s in range(3)]

    def together(members, checkpoint):
        return [{"acc": p["seed"] / 10} for p in members]

    runs = store.sweep("g", grid, _never, group=lambda p: p["group"], fn_group=together)
    assert [r.cached for r in runs] == [False] * 3
    assert [r.cached for r in store.sweep("g", grid, _never, group=lambda p: p["group"], fn_group=together)] == [
        True
    ] * 3


def _never(params, checkpoint):
    raise AssertionError("a grouped run was computed alone")


@case(21, "a read-only store of finished runs draws figures")
def test_a_read_only_store_serves_its_runs_and_names_a_missing_one(tmp_path, mount_tmpfs):
    source = RunStore(tmp_path / "writable")
    source.run("k", {"seed": 0}, lambda p, c: {"acc": 1.0})
    folder = mount_tmpfs(tmp_path / "ro", "4m")
    shutil.copytree(source.root, folder, dirs_exist_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    store = RunStore(folder)
    assert store.check_usable() is False and store.load("k", {"seed": 0}).result == {"acc": 1.0}
    with pytest.raises(results_mod.ResultsError, match=r"1 run\(s\) are missing from the read-only run store"):
        store.run("k", {"seed": 1}, lambda p, c: {"acc": 0.0})


def test_the_input_hash_holds_every_layer_of_the_library():
    from repronets.build import hashing

    names = {f.relative_to(hashing.PACKAGE).as_posix() for f in hashing.library_files()}
    assert {"core/train.py", "runs/results.py", "report/claims.py", "tau/trial.py", "build/pipeline.py"} <= names


@case(2, "other data files under a dataset's name rebuild")
def test_the_input_hash_holds_the_data_files_identity(project, tmp_path, monkeypatch):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"one")
    monkeypatch.setenv("REPRONETS_DATA", str(tmp_path / "data"))
    params_dir = project.root / "params" / "real_mnist"
    shutil.copytree(ROOT / "params" / "real_mnist", params_dir, dirs_exist_ok=True)
    set_project = pipeline.Project(project.root, params_dir)
    before = pipeline.input_hash(set_project, "04_dynamic_exits", "quick")
    (raw / "train-images-idx3-ubyte").write_bytes(b"unpacked")  # what a first load adds: no change
    assert pipeline.input_hash(set_project, "04_dynamic_exits", "quick") == before
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"two")
    assert pipeline.input_hash(set_project, "04_dynamic_exits", "quick") != before


def test_every_case_of_the_issue_has_a_row():
    assert sorted(COVERED) == list(range(1, 22)), sorted(set(range(1, 22)) - set(COVERED))
