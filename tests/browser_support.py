"""JupyterLab in headless Chromium for the browser tests: a server of our own, a driver, waits, screenshots.

Used by ``test_browser.py`` (the explorers answer) and ``test_notebook_layout.py`` (every notebook fits the
screen). The server runs on a free local port with token auth and every Jupyter/IPython config, runtime,
settings and workspace folder temporary; the browser is the system ``chromium`` and ``chromedriver``
(Debian: ``apt-get install -y chromium chromium-driver``; or set ``LIRLAB_CHROMIUM`` /
``LIRLAB_CHROMEDRIVER``). Nothing is downloaded. Screenshots land in ``test-artifacts/`` (git-ignored).

Without Selenium, importing this module skips (the importing test module with it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .conftest import REPO

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = REPO / "test-artifacts"
SERVER_START_S = 300
KERNEL_RUN_S = 600
OUTPUTS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output"
RUN_ALL_COMMAND = "runmenu:run-all"  # "Run All Cells" in JupyterLab 4's Run menu
INSTALL_HINT = "install them with: apt-get install -y chromium chromium-driver"
#: What a page still rendering raises while a wait polls it.
RENDERING = (NoSuchElementException, StaleElementReferenceException)


def browser_binaries() -> tuple[str, str]:
    """Paths of the system Chromium and chromedriver, or skip."""
    chromium = (
        os.environ.get("LIRLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    driver = os.environ.get("LIRLAB_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium:
        pytest.skip(f"Chromium is not installed; {INSTALL_HINT} (or set LIRLAB_CHROMIUM)")
    if not driver:
        pytest.skip(f"chromedriver is not installed; {INSTALL_HINT} (or set LIRLAB_CHROMEDRIVER)")
    return chromium, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(settings_dir: Path) -> None:
    """JupyterLab user settings: no news prompt, every cell rendered, kernels start without asking."""
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    }.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class JupyterLab:
    """A JupyterLab server of our own in a temporary folder."""

    def __init__(self, root: Path, home: Path):
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        write_settings(home / "lab-settings")
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "IPYTHONDIR": str(home / "ipython"),
            "HF_HUB_OFFLINE": "1",
        }
        self.log_path = home / "jupyterlab.log"
        self.log = open(self.log_path, "w")  # closed in stop(), after the server
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.allow_root=True",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return json.loads(body) if body else None

    def kernel_state(self, notebook: str) -> str | None:
        """The execution state of the notebook's kernel as the server knows it (None: no session yet)."""
        for session in self.api("/api/sessions"):
            if session["path"] == notebook:
                return session["kernel"]["execution_state"]
        return None

    def kernel_idle(self, notebook: str) -> bool:
        """Whether the notebook's kernel has started and waits for work (asked of the server)."""
        return self.kernel_state(notebook) == "idle"

    def shut_down_kernels(self) -> None:
        """Ends every session and its kernel (what a notebook left running holds memory)."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        try:
            self.api("/api/shutdown", method="POST")  # shuts its kernels down too
            self.process.wait(timeout=30)
        except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def start_lab(root: Path, home: Path) -> JupyterLab:
    """A JupyterLab serving ``root``, answering; stopped again if it does not come up."""
    server = JupyterLab(root, home)
    try:
        server.wait_until_ready()
    except BaseException:
        server.stop()
        raise
    return server


def start_chromium(binaries: tuple[str, str], scratch: Path, width: int, height: int) -> webdriver.Chrome:
    """Headless Chromium with a ``width`` × ``height`` window, its profile and driver log in ``scratch``."""
    chromium, driver_path = binaries
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # Chromium's sandbox cannot start as root, nor in most CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        f"--user-data-dir={scratch / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = webdriver.ChromeService(
        executable_path=driver_path, log_output=str(scratch / "chromedriver.log")
    )
    return webdriver.Chrome(options=options, service=service)


def screenshot(driver, name: str) -> Path:
    """Saves what the browser shows as ``test-artifacts/<name>.png`` (``name`` may hold a folder)."""
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def wait_for(driver, condition, timeout: float, what: str, name: str):
    """``WebDriverWait.until`` that leaves a screenshot and says what did not happen."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5, ignored_exceptions=RENDERING).until(
            condition
        )
    except TimeoutException:
        path = screenshot(driver, f"{name}-failed")
        pytest.fail(f"{what} within {timeout:.0f} s (screenshot: {path})", pytrace=False)


def write_notebook(root: Path, name: str, cells: list[str]) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, root / name)
    return name


def open_notebook(driver, lab: JupyterLab, name: str) -> None:
    """Opens ``name`` (a path under the server's root) in a fresh workspace; waits for its kernel."""
    driver.get(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    wait_for(
        driver, lambda d: lab.kernel_idle(name), KERNEL_RUN_S, f"the kernel of {name} did not start", name
    )


def click_run_all(driver, name: str) -> None:
    """Runs every cell of the open notebook from JupyterLab's Run menu, as a reader would."""
    driver.find_element(By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')][.//*[text()='Run']]").click()
    run_all = wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f"li[data-command='{RUN_ALL_COMMAND}']"),
        30,
        "the Run menu did not open",
        name,
    )
    run_all.click()


def open_and_run_all(driver, lab: JupyterLab, name: str, ready_text: str) -> None:
    """Open a notebook in JupyterLab, run every cell from the Run menu, wait for ``ready_text`` to show."""
    open_notebook(driver, lab, name)
    click_run_all(driver, name)
    wait_for(
        driver,
        lambda d: ready_text in outputs_text(d),
        KERNEL_RUN_S,
        f"{name} did not finish running its cells ({ready_text!r} never showed)",
        name,
    )
    errors = driver.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "An exception has occurred" in e.text]
    assert not tracebacks, f"{name} raised in the browser:\n{tracebacks[0]}"


def outputs_text(driver) -> str:
    """The text of every cell output in the open notebook (not its sources)."""
    return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, OUTPUTS))


def image_rendered(driver, element) -> bool:
    return bool(
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", element)
    )
