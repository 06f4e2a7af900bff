"""In a real browser (Playwright driving Debian's chromium through executable_path; .ci/run installs it): the results
site of a smoke build, and every notebook run in JupyterLab at the smoke profile with the
"Python (repronets)" kernel, one explorer moved by hand.

Screenshots go to a folder of the test run, or to $REPRONETS_SCREENSHOTS (the README's two images were made with
``REPRONETS_SCREENSHOTS=docs/images ./run_all.sh test tests/test_browser.py``)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from repronets.build import pipeline, site
from repronets.report import explore
from repronets.report.claims import VERDICTS, ledger_rows

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")
pytest.importorskip("myst_nb", reason="the site's tools are the [site] extra (./run_all.sh test installs them)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "Python (repronets)"
PROFILE = "smoke"  # of the notebooks the site publishes and JupyterLab runs
pytestmark = pytest.mark.slow


def chromium_executable() -> str:
    """Debian's chromium: $REPRONETS_CHROMIUM, or on the PATH, or installed with apt-get when running as root (as
    tests/slurm/cluster.sh installs Slurm); otherwise the browser tests are skipped, saying how to install it."""
    for name in (os.environ.get("REPRONETS_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
            env=env,
            capture_output=True,
            timeout=900,
        )
        if shutil.which("chromium"):
            return shutil.which("chromium")
    missing = "Debian's chromium is not installed: apt-get install chromium (or set REPRONETS_CHROMIUM)"
    if os.environ.get("REPRONETS_REQUIRE_BROWSER"):  # CI: a browser test that cannot run is a failure
        pytest.fail(missing)
    pytest.skip(missing)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        # --no-sandbox: chromium's sandbox refuses to start as root (CI containers)
        b = p.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("REPRONETS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class PageWatch:
    """A page with its console errors, failed loads and every request it made."""

    def __init__(self, page):
        self.page, self.errors, self.requests = page, [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("requestfailed", lambda r: self.errors.append(f"failed to load {r.url}"))
        page.on("request", lambda r: self.requests.append(r.url))


# ------------------------------------------------------------------------------------------------ the results site


@pytest.fixture(scope="module")
def built_site(smoke_build) -> Path:
    """The site of the session's smoke build of every notebook (conftest.smoke_build: executed notebooks are build
    outputs, not committed, so a clean clone has none to publish)."""
    project, code, out = smoke_build
    assert code == 0, out
    return site.build(project, PROFILE)


def site_pages(index: Path) -> list[Path]:
    return sorted(p for p in index.parent.rglob("*.html") if not {"_sources", "_static"} & set(p.parts))


def test_site_has_a_page_per_notebook_the_measured_tables_and_each_outputs_provenance(built_site):
    pages = {p.relative_to(built_site.parent).as_posix() for p in site_pages(built_site)}
    assert {"index.html", "measured.html"} | {f"notebooks/{n}.html" for n in NOTEBOOKS} <= pages
    page = (built_site.parent / "notebooks" / "01_tau_speedup.html").read_text()
    assert "Outputs and their provenance" in page and "accuracy_vs_epoch" in page


def test_building_without_a_built_profile_names_the_command(tmp_path):
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(site.SiteError, match=r"\./run_all\.sh --profile quick"):
        site.build(pipeline.Project(tmp_path), "quick")


def test_every_site_page_loads_offline_without_errors_and_with_every_image(built_site, browser, screenshots):
    pages = site_pages(built_site)
    for path in pages:
        watch = PageWatch(browser.new_page(viewport={"width": 1300, "height": 900}))
        watch.page.goto(path.as_uri())
        watch.page.wait_for_load_state("networkidle")
        # images below the fold may load lazily: load them all, then wait for every one
        watch.page.evaluate("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        watch.page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
        broken = watch.page.evaluate(
            "Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute('src'))"
        )
        name = path.relative_to(built_site.parent).as_posix()
        assert not broken, f"{name}: images that did not load: {broken}"
        assert not watch.errors, f"{name}: {watch.errors}"
        remote = [u for u in watch.requests if not u.startswith(("file://", "data:", "blob:"))]
        assert not remote, f"{name} fetched from the network: {remote}"
        links = watch.page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
        for link in links:
            url = urlparse(link)
            if url.scheme == "file":
                assert Path(unquote(url.path)).exists(), f"{name}: broken link {link}"
        if name in ("index.html", "notebooks/04_dynamic_exits.html"):
            watch.page.screenshot(path=screenshots / f"site_{Path(name).stem}.png")
        watch.page.close()
    assert len(pages) >= len(NOTEBOOKS) + 2


def test_the_landing_page_is_the_claims_ledger_with_a_verdict_in_every_row(built_site, browser):
    figures = built_site.parents[3] / "figures" / PROFILE
    expected = sum(len(ledger_rows(p.parent)) for p in figures.glob("*/claims.json"))  # timing rows too
    page = browser.new_page()
    page.goto(built_site.as_uri())
    rows = page.locator("table tbody tr")
    # the columns of claims.markdown_table: claim, by, unit, test, n, mean, interval, verdict, notes
    verdicts = [rows.nth(i).locator("td").nth(7).inner_text() for i in range(rows.count())]
    page.close()
    assert len(verdicts) == expected > 0
    assert all(v.startswith(VERDICTS) for v in verdicts), [v for v in verdicts if not v.startswith(VERDICTS)]


# ------------------------------------------------------------------------------------------------------ JupyterLab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """``jupyter lab`` on loopback with a token, serving the notebooks parameterized for the smoke profile (papermill's
    own injection), with a run store of its own."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    work = tmp_path_factory.mktemp("jupyterlab")
    folder = work / "notebooks"
    folder.mkdir()
    for name in NOTEBOOKS:
        nb = load_notebook_node(str(ROOT / "notebooks" / f"{name}.ipynb"))
        params = {"profile": PROFILE, "output_dir": str(work / "outputs" / name)}
        nbformat.write(parameterize_notebook(nb, params), folder / f"{name}.ipynb")
    port, token = free_port(), "repronets-test-token"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder}",
        f"--LabApp.workspaces_dir={work / 'workspaces'}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]
    env = dict(os.environ, REPRONETS_RUNS=str(work / "runs"), JUPYTER_RUNTIME_DIR=str(work / "runtime"))
    log = open(work / "server.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            assert server.poll() is None, (work / "server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield {"url": url, "token": token, "folder": folder}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _shut_down_kernels(lab) -> None:
    for s in json.load(urllib.request.urlopen(f"{lab['url']}/api/sessions?token={lab['token']}")):
        req = urllib.request.Request(f"{lab['url']}/api/sessions/{s['id']}?token={lab['token']}", method="DELETE")
        urllib.request.urlopen(req)


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def open_with_kernel(page, lab, name: str) -> None:
    # ?reset: a fresh workspace, not the notebooks the previous tests left open (each would start its kernel)
    page.goto(f"{lab['url']}/lab/tree/{name}.ipynb?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    kernel = page.locator("[data-jp-item-name='kernelName']").last
    kernel.locator("button").or_(kernel).first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select").select_option(label=KERNEL)
    dialog.locator(".jp-mod-accept").click()
    page.wait_for_function(
        f"""Array.from(document.querySelectorAll("[data-jp-item-name='kernelName']"))
            .some(e => e.textContent.includes({json.dumps(KERNEL)}))""",
        timeout=60_000,
    )


def run_all_and_save(page, lab, name: str, timeout_s: float = 600) -> nbformat.NotebookNode:
    _menu(page, "Run", "Run All Cells")
    # Done when no cell is queued or running ("[*]") and one has run: every cell, or those before the first error
    # (JupyterLab then drops the queue), so a failing cell is reported at once, not after the timeout.
    page.wait_for_function(
        """() => {
            const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));
            return prompts.some(p => /\\[\\d+\\]/.test(p.textContent))
                && !prompts.some(p => p.textContent.includes('*'));
        }""",
        timeout=timeout_s * 1000,
    )
    path = lab["folder"] / f"{name}.ipynb"
    before = path.stat().st_mtime_ns
    _menu(page, "File", "Save Notebook")
    deadline = time.time() + 30
    while path.stat().st_mtime_ns == before and time.time() < deadline:
        time.sleep(0.2)
    return nbformat.read(path, 4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab_with_the_project_kernel(name, jupyterlab, browser, screenshots):
    watch = PageWatch(browser.new_page(viewport={"width": 1400, "height": 1000}))
    try:
        open_with_kernel(watch.page, jupyterlab, name)
        nb = run_all_and_save(watch.page, jupyterlab, name)
        code = [c for c in nb.cells if c.cell_type == "code"]
        errors = [(i, o) for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name}, code cell {errors[0][0]}: {errors[0][1].ename}: {errors[0][1].evalue}"
        assert all(c.execution_count for c in code), "Run All stopped before the last cell"
        assert nb.metadata.kernelspec.display_name == KERNEL
        if name == "01_tau_speedup":
            move_a_control_and_see_the_view_change(watch.page, screenshots)
    finally:
        watch.page.close()
        _shut_down_kernels(jupyterlab)


def move_a_control_and_see_the_view_change(page, screenshots: Path) -> None:
    """The τ explorer: pick another training mode; the image in its view must change."""
    explorer = page.locator(f".{explore.CSS_CLASS}")
    explorer.scroll_into_view_if_needed()
    view = f".{explore.CSS_CLASS} .widget-output img"
    page.wait_for_selector(view, timeout=30_000)
    before = page.locator(view).get_attribute("src")
    mode = explorer.locator(".widget-dropdown", has_text="mode").locator("select")
    options = mode.locator("option").all_inner_texts()
    assert len(options) > 1, "the smoke runs offer a single mode: nothing to change"
    mode.select_option(label=options[1])
    # the output area draws a new <img> for the new view
    page.wait_for_function(
        "([css, before]) => { const i = document.querySelector(css); return i && i.getAttribute('src') !== before; }",
        arg=[view, before],
        timeout=30_000,
    )
    explorer.screenshot(path=screenshots / "jupyterlab_explorer.png")
