"""An administrator's console in headless Chromium: signing in, a GPU chart moving live, draining a backend."""

from __future__ import annotations

import time

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import ADMIN_PASSWORD, SIDECAR_KEY, sign_in, wait_for_text
from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.browser


def test_signing_in_with_a_wrong_then_the_right_password(console: Cluster, browser: webdriver.Chrome) -> None:
    sign_in(browser, console.url, 'root', 'wrong-password')
    wait_for_text(browser, 'Wrong username or password')
    password = browser.find_elements(By.CSS_SELECTOR, 'input')[1]
    password.send_keys(ADMIN_PASSWORD, Keys.ENTER)  # Enter submits, as in any login form
    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
    wait_for_text(browser, 'Log out')
    browser.get(f'{console.url}/logout')
    browser.get(f'{console.url}/admin/backends')
    WebDriverWait(browser, 15).until(lambda driver: '/login' in driver.current_url)


def test_a_gpu_chart_moves_without_reloading_the_page(console: Cluster, browser: webdriver.Chrome) -> None:
    admin = {'X-API-Key': console.admin_key}
    registered = httpx.post(f'{console.url}/api/admin/nodes/register', headers=admin, timeout=30, json={
        'name': 'gpu-sim-1', 'hostname': 'localhost', 'sidecar_url': console.sims['sidecar'],
        'sidecar_key': SIDECAR_KEY})
    assert registered.status_code == 201, registered.text
    sign_in(browser, console.url, 'root', ADMIN_PASSWORD)
    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
    browser.get(f'{console.url}/admin/nodes')
    wait_for_text(browser, 'gpu-sim-1')
    browser.execute_script('window.__marker = "same page"')  # gone if the page reloads

    def points() -> int:
        count = browser.execute_script(
            'const p = document.querySelector(".js-plotly-plot");'
            'return p && p.data && p.data.length ? p.data[0].y.length : 0;')
        return int(count or 0)

    WebDriverWait(browser, 20).until(lambda _: points() > 0)
    first = points()
    WebDriverWait(browser, 30, poll_frequency=0.5).until(lambda _: points() > first)
    assert browser.execute_script('return window.__marker') == 'same page'


def test_the_drain_button_takes_a_backend_out_until_it_is_disabled(console: Cluster,
                                                                    browser: webdriver.Chrome) -> None:
    sign_in(browser, console.url, 'root', ADMIN_PASSWORD)
    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
    browser.get(f'{console.url}/admin/backends')
    wait_for_text(browser, 'sim-vllm')
    browser.execute_script('window.__marker = "same page"')
    browser.find_element(By.XPATH, '//tr[contains(., "sim-vllm")]//button[contains(., "more_vert")]').click()
    in_menu = '//div[contains(@class, "q-menu")]//*[contains(@class, "q-item") and contains(., "Drain")]'
    WebDriverWait(browser, 10).until(lambda driver: driver.find_element(By.XPATH, in_menu)).click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = browser.find_element(By.XPATH, '//tr[contains(., "sim-vllm")]').text
        if 'disabled' in row:
            break
        time.sleep(0.5)
    assert 'disabled' in browser.find_element(By.XPATH, '//tr[contains(., "sim-vllm")]').text
    assert browser.execute_script('return window.__marker') == 'same page'
    status = httpx.get(f'{console.url}/api/admin/backends', headers={'X-API-Key': console.admin_key}, timeout=30)
    assert [b['status'] for b in status.json() if b['name'] == 'sim-vllm'] == ['disabled']
