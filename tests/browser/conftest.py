"""The console in a real browser: `mindrouter serve` as a process (simulated engines and a simulated GPU
sidecar as processes too), driven by Debian's headless Chromium through Selenium.

Marked `browser`; CI installs chromium and chromium-driver (.ci/run). Without them the tests skip locally and
fail under CI (CI=true), like the MariaDB and Redis suites.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.cluster import Cluster, running_cluster
from tests.e2e.processes import free_port, running

ADMIN_PASSWORD = 'browser-pass-1'
SIDECAR_KEY = 'browser-sidecar-key'

pytestmark = pytest.mark.browser


def chromium_paths() -> tuple[str, str]:
    binary = os.environ.get('CHROME_BINARY_LOCATION') or shutil.which('chromium') or ''
    driver = shutil.which('chromedriver') or ''
    if binary and driver:
        return binary, driver
    if os.environ.get('CI'):
        pytest.fail('chromium and chromedriver are missing; .ci/run installs them (Debian chromium chromium-driver)')
    pytest.skip('chromium/chromedriver not installed (apt-get install chromium chromium-driver)')


@pytest.fixture(scope='module')
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A gateway with one simulated vLLM backend, a simulated one-GPU node whose readings swing every 20 s,
    polled every second, and an admin who can sign in."""
    root = tmp_path_factory.mktemp('console')
    settings = {'NODE_POLL_INTERVAL': '1', 'REGISTRY_RELOAD_INTERVAL': '0.5', 'BACKEND_CHECK_INTERVAL': '1'}
    with running_cluster(root, {'sim-vllm': ('vllm', ['--token-delay-ms', '50'])}, settings=settings,
                         admin_password=ADMIN_PASSWORD, unlimited=True) as cluster:
        port = free_port()
        sidecar = f'http://127.0.0.1:{port}'
        with running([sys.executable, '-m', 'sim', 'sidecar', '--port', str(port), '--gpus', '1', '--key', SIDECAR_KEY,
                      '--period-s', '20'], cluster.env, log_path=Path(root) / 'sidecar.log',
                     ready_url=f'{sidecar}/_sim/config'):
            cluster.sims['sidecar'] = sidecar
            yield cluster


@pytest.fixture(scope='module')
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


@contextmanager
def chromium(*arguments: str) -> Iterator[webdriver.Chrome]:
    """Headless Chromium (`arguments`: more command-line switches, without the dashes), quit at the end."""
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    for argument in ('headless=new', 'no-sandbox', 'disable-dev-shm-usage', 'window-size=1400,1000', *arguments):
        options.add_argument(argument)
    options.binary_location = binary
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})  # console messages, CSP violations among them
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver: webdriver.Chrome, text: str, timeout: float = 15) -> None:
    WebDriverWait(driver, timeout).until(
        expected_conditions.presence_of_element_located((By.XPATH, f'//*[contains(normalize-space(.), "{text}")]')))


def sign_in(driver: webdriver.Chrome, url: str, username: str, password: str, *, login: str = '/login') -> None:
    """Sign out, open the login page (`login`: its path and query) and send the form."""
    driver.get(f'{url}/logout')
    driver.get(f'{url}{login}')
    WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, 'input')))
    fields = driver.find_elements(By.CSS_SELECTOR, 'input')
    fields[0].send_keys(username)
    fields[1].send_keys(password)
    driver.find_element(By.XPATH, '//button[contains(., "Log in")]').click()
