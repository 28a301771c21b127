"""The console's pages under their Content-Security-Policy in headless Chromium: each one renders (Plotly charts,
a streamed chat answer) and the browser reports no violation of the policy."""

from __future__ import annotations

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import ADMIN_PASSWORD, SIDECAR_KEY, sign_in, wait_for_text
from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.browser

PLOTS_JS = 'return document.querySelectorAll(".js-plotly-plot .main-svg").length'  # charts Plotly drew


def violations(browser: webdriver.Chrome) -> list[str]:
    """What the browser said about the policy since the last call (reading the log empties it)."""
    return [entry['message'] for entry in browser.get_log('browser') if 'Content Security Policy' in entry['message']]


def test_pages_carry_the_security_headers(console: Cluster) -> None:
    page = httpx.get(f'{console.url}/login', timeout=30)
    assert page.headers['content-type'].startswith('text/html')
    policy = page.headers['content-security-policy']
    assert "frame-ancestors 'none'" in policy and "img-src 'self' data:;" in policy
    assert page.headers['x-frame-options'] == 'DENY'
    assert page.headers['x-content-type-options'] == 'nosniff'
    assert page.headers['referrer-policy'] == 'strict-origin-when-cross-origin'
    assert 'strict-transport-security' not in page.headers  # development: plain HTTP on localhost


def test_the_console_works_under_its_policy(console: Cluster, browser: webdriver.Chrome) -> None:
    registered = httpx.post(f'{console.url}/api/admin/nodes/register', headers={'X-API-Key': console.admin_key},
                            timeout=30, json={'name': 'gpu-csp', 'hostname': 'localhost',
                                              'sidecar_url': console.sims['sidecar'], 'sidecar_key': SIDECAR_KEY})
    assert registered.status_code == 201, registered.text
    browser.get(f'{console.url}/login')
    wait_for_text(browser, 'Log in')
    assert violations(browser) == []

    sign_in(browser, console.url, 'root', ADMIN_PASSWORD)
    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
    WebDriverWait(browser, 20).until(lambda driver: driver.execute_script(PLOTS_JS) >= 1)  # the overview's chart
    assert violations(browser) == []

    browser.get(f'{console.url}/dashboard')
    WebDriverWait(browser, 20).until(lambda driver: driver.execute_script(PLOTS_JS) >= 2)  # the usage charts
    assert violations(browser) == []

    browser.get(f'{console.url}/admin/nodes')
    wait_for_text(browser, 'gpu-csp')
    WebDriverWait(browser, 20).until(lambda driver: driver.execute_script(PLOTS_JS) >= 1)  # a live GPU chart
    assert violations(browser) == []

    browser.get(f'{console.url}/chat')
    wait_for_text(browser, 'meta-llama/Llama-3.2-1B-Instruct')
    browser.find_element(By.CSS_SELECTOR, 'textarea').send_keys('Write **bold** and `code`.', Keys.ENTER)
    wait_for_text(browser, 'completion tokens', timeout=30)  # the answer streamed in over the websocket
    assert violations(browser) == []
