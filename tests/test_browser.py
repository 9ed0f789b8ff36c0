"""JupyterLab in a real browser (opt-in: ``make browser-test``, which sets ``GIFD_BROWSER_TEST=1``).

Starts ``jupyter lab`` on a temporary copy of ``notebooks/01_in_distribution.ipynb`` and
``notebooks/06_flower_audit.ipynb`` with small parameters injected after their ``parameters`` cell (papermill's
own helper; ``interactive = True`` where the notebook has that parameter), opens each in headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, driven by Selenium; nothing is downloaded), runs it with the menu's
Run > Run All Cells, and checks what a reader sees: no error output, the figures, and for a notebook with the
explorer (``gifd.widgets.explore``) that choosing GIFD in its method menu and pressing the Right arrow key on its
stage slider each redraw the image. Screenshots, the explorer's images and ``summary.json`` (timings, measured image
differences) go to ``build/browser/``."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

HOW = ("opt-in browser test: run `make browser-test` (it installs selenium and sets GIFD_BROWSER_TEST=1); it needs "
       "Debian's chromium and chromium-driver: `apt-get install chromium chromium-driver`")  # fmt: skip
if os.environ.get("GIFD_BROWSER_TEST") != "1":
    pytest.skip(HOW, allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed; {HOW}")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("GIFD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = os.environ.get("GIFD_CHROMEDRIVER") or shutil.which("chromedriver")
RUN_TIMEOUT = float(os.environ.get("GIFD_BROWSER_TIMEOUT", "900"))  # seconds for one notebook's Run All

# small parameters (runs.json's "test" section, cut to IG and GIFD on the ConvNet; no LPIPS)
SMALL = dict(dataset="samples", budget=40, restarts=2, methods=["ig", "gifd"], model="convnet", lpips=False)
NOTEBOOKS = {
    "01_in_distribution": {**SMALL, "indices": [0], "batch_size": 1, "interactive": True},
    "06_flower_audit": {**SMALL, "indices": [0, 1, 2, 3], "batch_size": 2, "rounds": 1, "local_epochs": [1],
                        "partition_sizes": [2], "audit_rounds": [1], "audit_clients": [0], "interactive": True},
}  # fmt: skip
SUMMARY: dict[str, dict] = {}


def _defaults(nb) -> dict:
    from gifd.checks import parameters_of

    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return parameters_of(cell.source)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a temporary folder holding the parameterised notebooks: (base URL, token, folder)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    folder = tmp_path_factory.mktemp("lab")
    for name, params in NOTEBOOKS.items():
        nb = load_notebook_node(str(ROOT / "notebooks" / f"{name}.ipynb"))  # nbformat's, as papermill wants it
        known = _defaults(nb)  # `interactive` only where the notebook has it (check_notebook_parameters refuses others)
        params = {k: v for k, v in params.items() if k != "interactive" or k in known}
        nb = parameterize_notebook(nb, {**params, "out_dir": f"out/{name}"})  # inside the temporary folder
        nbformat.write(nb, folder / f"{name}.ipynb")
    settings = folder / ".lab" / "settings"
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    OUT.mkdir(parents=True, exist_ok=True)
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["JUPYTER_RUNTIME_DIR"] = str(folder / ".lab" / "runtime")
    log = open(OUT / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={folder}", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={folder / '.lab' / 'workspaces'}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start (exit {proc.poll()}); see {OUT / 'jupyterlab.log'}")
                time.sleep(0.5)
        yield base, token, folder
    finally:
        proc.terminate()  # SIGTERM: the server stops and shuts down any kernel still running
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the server's own process group (kernels run in their own sessions)
            proc.wait()
        log.close()
        (OUT / "summary.json").write_text(json.dumps(SUMMARY, indent=1) + "\n")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(f"chromium or chromedriver not found (chromium: {CHROMIUM}, chromedriver: {CHROMEDRIVER}); {HOW}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
                "--hide-scrollbars"):  # fmt: skip
        options.add_argument(arg)
    # the driver's path is given, so Selenium Manager is not consulted (SE_OFFLINE: nor could it download anything)
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def wait_for(what: str, condition, timeout: float = 60, poll: float = 0.25):
    """``condition()``'s first truthy value within ``timeout`` seconds (stale elements count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (StaleElementReferenceException, IndexError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def errors_shown(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-mime-type="application/vnd.jupyter.error"]')]


def kernel_idle(lab, name: str) -> bool:
    base, token, _ = lab
    sessions = [s for s in _api(base, token, "/api/sessions") if s["path"] == f"{name}.ipynb"]
    return [s["kernel"]["execution_state"] for s in sessions] == ["idle"]


def run_all(driver, lab, name: str) -> float:
    """Run > Run All Cells from the menu bar; wait until every code cell has run. Returns the seconds it took."""
    status_bar = driver.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget")
    wait_for("the kernel", lambda: kernel_idle(lab, name) and "| Idle" in status_bar.text, 120)
    menu = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text.strip() == "Run")
    menu.click()

    def run_all_item():
        return [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-item") if e.text.startswith("Run All Cells")]

    wait_for("Run All Cells in the Run menu", run_all_item)[0].click()
    start = time.monotonic()

    def finished():
        if errors := errors_shown(driver):
            driver.save_screenshot(str(OUT / f"{name}_error.png"))
            raise AssertionError(f"{name}: a cell failed in the browser:\n" + "\n".join(errors)[-3000:])
        prompts = [p.text.strip() for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        return prompts and all(p[1:-2].isdigit() for p in prompts)  # "[7]:"; "[*]:" while queued or running

    try:
        wait_for(f"{name} to run all its cells", finished, RUN_TIMEOUT, poll=1)
    except AssertionError:
        driver.save_screenshot(str(OUT / f"{name}_timeout.png"))
        raise
    return time.monotonic() - start


def png_of(img) -> bytes:
    src = img.get_attribute("src")
    assert src.startswith("data:image/png;base64,"), src[:80]
    return base64.b64decode(src.split(",", 1)[1])


def runs(mask) -> list[tuple[int, int]]:
    """The ``[start, stop)`` runs of True in a 1-d boolean array."""
    import numpy as np

    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def last_tile(png: bytes):
    """The explorer figure's last row's image (its framed tile, without the row title) as a float RGB array: rows
    are separated by white space, and the tile is the widest run of non-white columns in its row."""
    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    ink = (x < 245).any(axis=2)
    top, bottom = runs(ink.any(axis=1))[-1]
    left, right = max(runs(ink[top:bottom].any(axis=0)), key=lambda r: r[1] - r[0])
    return x[top:bottom, left:right]


def difference(a: bytes, b: bytes) -> dict:
    """How two explorer images differ: whether the PNGs differ at all, and the mean absolute difference (0-255) and
    share of changed pixels of the reconstruction tile (the last row; the title and the truth row sit above)."""
    import numpy as np

    x, y = last_tile(a), last_tile(b)
    out = {"png_differs": a != b, "tile_shape": list(x.shape)}
    if x.shape != y.shape:
        return {**out, "tile_shapes_differ": [list(x.shape), list(y.shape)]}
    d = np.abs(x - y)
    out["tile_mean_abs_diff"] = round(float(d.mean()), 2)
    out["tile_changed"] = round(float((d.max(axis=2) > 8).mean()), 3)  # share of pixels changed by more than 8/255
    return out


def open_notebook(driver, lab, name: str):
    base, token, _ = lab
    driver.get(f"{base}/lab/workspaces/{name}/tree/{name}.ipynb?reset&token={token}")
    wait_for(f"{name} to open", lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell"), 120)


def shut_down_kernels(lab):
    base, token, _ = lab
    for kernel in _api(base, token, "/api/kernels"):
        _api(base, token, f"/api/kernels/{kernel['id']}", "DELETE")


def explorer_check(driver, name: str) -> dict:
    """Find the explorer, choose GIFD, move its stage slider one step; each must redraw the image."""

    def stage_slider():
        return [s for s in driver.find_elements(By.CSS_SELECTOR, ".widget-slider")
                if s.find_element(By.CSS_SELECTOR, ".widget-label").text.strip() == "GIFD stage"]  # fmt: skip

    slider = wait_for("the explorer widget (its GIFD stage slider)", stage_slider, 60)[0]
    box = slider.find_element(By.XPATH, "ancestor::div[contains(@class, 'widget-vbox')][1]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)

    def image() -> bytes | None:  # None while the output is cleared for a redraw
        imgs = box.find_elements(By.CSS_SELECTOR, ".widget-output img")
        return png_of(imgs[0]) if imgs else None

    def redrawn(before: bytes, what: str) -> bytes:
        return wait_for(f"the explorer to redraw after {what}", lambda: (p := image()) != before and p, 60)

    first = wait_for("the explorer's image", image, 60)
    method = Select(box.find_element(By.CSS_SELECTOR, ".widget-dropdown select"))
    methods = NOTEBOOKS[name]["methods"]
    assert [o.text for o in method.options] == methods and method.first_selected_option.text == methods[0] != "gifd"
    box.screenshot(str(OUT / f"{name}_explorer_{methods[0]}.png"))
    method.select_by_visible_text("gifd")
    stage0 = redrawn(first, "choosing gifd")
    handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
    wait_for("the stage slider to be enabled", lambda: not slider.find_elements(By.CSS_SELECTOR, "[disabled]"), 30)
    stages = round(float(handle.get_attribute("aria-valuemax"))) + 1
    assert stages > 1, "GIFD should have more than one stage to browse"
    assert float(handle.get_attribute("aria-valuenow")) == 0
    box.screenshot(str(OUT / f"{name}_explorer_gifd_stage0.png"))
    driver.save_screenshot(str(OUT / f"{name}_stage0.png"))
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    stage1 = redrawn(stage0, "pressing the Right arrow key on the stage slider")
    assert float(handle.get_attribute("aria-valuenow")) == 1
    box.screenshot(str(OUT / f"{name}_explorer_gifd_stage1.png"))
    driver.save_screenshot(str(OUT / f"{name}_stage1.png"))
    for label, png in ((methods[0], first), ("gifd_stage0", stage0), ("gifd_stage1", stage1)):
        (OUT / f"{name}_image_{label}.png").write_bytes(png)
    moved = difference(stage0, stage1)
    assert moved.get("tile_mean_abs_diff", 0) > 1, f"the reconstruction barely changed between stages 0 and 1: {moved}"
    return {"gifd_stages": stages, f"{methods[0]}_to_gifd": difference(first, stage0), "stage0_to_stage1": moved}


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_the_notebook_runs_in_jupyterlab_and_its_explorer_responds(browser, lab, name):
    """Run All in JupyterLab: no error, its figures and tables shown; where the notebook has ``interactive``, the
    explorer redraws on a new method and a new GIFD stage."""
    import nbformat

    for old in OUT.glob(f"{name}_*.png"):
        old.unlink()
    t0, summary = time.monotonic(), {}
    try:
        open_notebook(browser, lab, name)
        summary["run_all_seconds"] = round(run_all(browser, lab, name), 1)
        assert not errors_shown(browser)
        figures = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
        assert figures, f"{name}: no figure was rendered"
        tables = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output.jp-RenderedMarkdown table")
        assert tables, f"{name}: no results table was rendered"
        summary["figures_rendered"], summary["tables_rendered"] = len(figures), len(tables)
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", figures[0])
        browser.save_screenshot(str(OUT / f"{name}_figure.png"))
        if "interactive" in _defaults(nbformat.read(lab[2] / f"{name}.ipynb", as_version=4)):
            summary["explorer"] = explorer_check(browser, name)
        else:
            summary["explorer"] = "this notebook has no `interactive` parameter (no explorer to check)"
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", tables[-1])
    finally:
        summary["total_seconds"] = round(time.monotonic() - t0, 1)
        SUMMARY[name] = summary
        browser.save_screenshot(str(OUT / f"{name}_final.png"))
        shut_down_kernels(lab)
