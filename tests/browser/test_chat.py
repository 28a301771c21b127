"""The chat page in headless Chromium: an answer streams into the page word by word, then completes with its
token usage and copies with its button; a file picked becomes a chip; at phone width the conversation list folds
into a drawer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from sim.text import expected_text
from tests.browser.conftest import ADMIN_PASSWORD, sign_in, wait_for_text
from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.browser

MODEL = 'meta-llama/Llama-3.2-1B-Instruct'  # the simulated vLLM's model
STUB_CLIPBOARD = ('window.__copied = null; Object.defineProperty(navigator, "clipboard", {configurable: true, '
                  'value: {writeText: (text) => { window.__copied = text; return Promise.resolve(); }}})')
ANSWER_JS = 'return [...document.querySelectorAll(".chat-answer")].map(e => e.innerText).join(" ").trim()'


def open_chat(browser: webdriver.Chrome, console: Cluster) -> None:
    sign_in(browser, console.url, 'root', ADMIN_PASSWORD)
    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.endswith('/admin'))
    browser.get(f'{console.url}/chat')
    wait_for_text(browser, MODEL)  # the picker chose the only model


def test_a_reply_streams_in_then_completes(console: Cluster, browser: webdriver.Chrome) -> None:
    console.sim_config('sim-vllm', tokens=40, token_delay_ms=60)  # about 2.4 s of answer
    open_chat(browser, console)
    browser.find_element(By.CSS_SELECTOR, 'textarea').send_keys('Tell me a story.', Keys.ENTER)
    wait_for_text(browser, 'Tell me a story.')
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not browser.find_elements(By.CSS_SELECTOR, '.chat-usage:not(:empty)'):
        text = str(browser.execute_script(ANSWER_JS) or '')
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        time.sleep(0.1)
    final = expected_text('Tell me a story.', 40)
    wait_for_text(browser, '40 completion tokens')
    WebDriverWait(browser, 10).until(lambda driver: driver.execute_script(ANSWER_JS) == final)
    partial = [text for text in seen if text != final]
    assert len(partial) >= 3, seen  # it grew in the page, several times, before it was whole
    assert all(final.startswith(text) for text in partial)
    assert [len(text) for text in partial] == sorted(len(text) for text in partial)

    browser.execute_script(STUB_CLIPBOARD)  # headless Chromium has no clipboard to read back
    browser.find_elements(By.CSS_SELECTOR, '.chat-copy')[-1].click()
    WebDriverWait(browser, 5).until(lambda driver: driver.execute_script('return window.__copied') == final)


def test_a_file_picked_in_the_browser_becomes_a_chip(console: Cluster, browser: webdriver.Chrome,
                                                     tmp_path: Path) -> None:
    notes = tmp_path / 'notes.md'
    notes.write_text('# Notes\n\nThe tide turns twice a day.\n')
    open_chat(browser, console)
    browser.find_element(By.CSS_SELECTOR, 'input[type=file]').send_keys(str(notes))  # what the clip button opens
    wait_for_text(browser, 'notes.md (')
    browser.find_element(By.XPATH, '//*[contains(@class, "q-chip")][contains(., "notes.md")]'
                                   '//*[contains(@class, "q-chip__icon--remove")]').click()
    WebDriverWait(browser, 10).until(lambda driver: not driver.find_elements(
        By.XPATH, '//*[contains(@class, "q-chip")][contains(., "notes.md")]'))


def test_at_phone_width_the_conversations_are_a_drawer(console: Cluster, browser: webdriver.Chrome) -> None:
    browser.set_window_size(390, 844)
    try:
        open_chat(browser, console)
        drawer = browser.find_element(By.CSS_SELECTOR, '.q-drawer')
        WebDriverWait(browser, 10).until(lambda _: not _on_screen(browser, drawer))
        browser.find_element(By.XPATH, '//button[contains(., "menu")]').click()
        WebDriverWait(browser, 10).until(lambda _: _on_screen(browser, drawer))
        wait_for_text(browser, 'New chat')
    finally:
        browser.set_window_size(1400, 1000)


def _on_screen(browser: webdriver.Chrome, element: object) -> bool:
    right = browser.execute_script('return arguments[0].getBoundingClientRect().right', element)
    return float(right or 0) > 10
