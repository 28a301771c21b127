"""The console through nginx in headless Chromium: signing in over TLS, the dashboard updating live over
NiceGUI's websocket (upgraded by nginx, not long-polling), and the sign-in throttle seeing the browser's
address rather than nginx's."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import chromium, sign_in, wait_for_text
from tests.topology.stack import ADMIN_PASSWORD, Topology

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def browser() -> Iterator[webdriver.Chrome]:
    with chromium('ignore-certificate-errors') as driver:  # the topology's certificate is made for the run
        yield driver


def requests_on_dashboard(browser: webdriver.Chrome) -> str:
    labels = browser.find_elements(By.XPATH, '//div[normalize-space(text())="Requests"]/following-sibling::div[1]')
    return labels[0].text if labels else ''


def test_signing_in_and_a_dashboard_that_updates_itself(topology: Topology, browser: webdriver.Chrome) -> None:
    sign_in(browser, topology.url, 'root', 'not-the-password')
    wait_for_text(browser, 'Wrong username or password')
    sign_in(browser, topology.url, 'root', ADMIN_PASSWORD)
    WebDriverWait(browser, 30).until(lambda driver: driver.current_url == f'{topology.url}/admin')
    browser.get(f'{topology.url}/dashboard')
    wait_for_text(browser, 'Signed in as root')
    WebDriverWait(browser, 30).until(lambda _: requests_on_dashboard(browser).isdigit())
    before = int(requests_on_dashboard(browser))
    browser.execute_script('window.__marker = "same page"')  # gone if the page reloads

    with topology.client(headers={'X-API-Key': topology.admin_key}) as client:
        for _ in range(3):
            answer = client.post(
                f'{topology.url}/v1/chat/completions',
                json={'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 2},
            )
            assert answer.status_code == 200

    # The page's timer runs in the console process and pushes the new figure over the websocket.
    WebDriverWait(browser, 45, poll_frequency=0.5).until(
        lambda _: requests_on_dashboard(browser).isdigit() and int(requests_on_dashboard(browser)) >= before + 3
    )
    assert browser.execute_script('return window.__marker') == 'same page'
    # nginx upgraded NiceGUI's Socket.IO connection to a websocket (101), rather than leaving it to long-polling.
    assert any(
        '/_nicegui_ws/socket.io/' in line and 'transport=websocket' in line and '" 101 ' in line
        for line in topology.access_log()
    ), topology.access_log()[-20:]


def test_the_sign_in_throttle_counts_the_browser_not_nginx(topology: Topology, browser: webdriver.Chrome) -> None:
    """The failed sign-in above is on the admin log from the browser's address (127.0.0.1), not from the address
    nginx connects from (127.0.0.2): one campus proxy must not lock everyone out."""
    with topology.client(headers={'X-API-Key': topology.admin_key}) as admin:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            rows = admin.get(f'{topology.url}/api/admin/log', params={'action': 'sign_in.failed'}).json()['rows']
            if rows:
                break
            time.sleep(0.3)
    assert rows, 'the failed sign-in is not on the admin log'
    assert all(row['target'] == 'from 127.0.0.1' for row in rows), rows
