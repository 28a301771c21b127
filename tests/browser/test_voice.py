"""Voice in the chat, in headless Chromium with its fake microphone (it "hears" a WAV file): the microphone button
records, the recording is transcribed through the gateway and lands in the composer; the read-aloud button on an
answer plays its speech as it streams; the voice picker lists the voices; with no speech backend it all hides.

The fake Speaches behind the gateway recognises nothing: Chromium re-encodes what it hears (WebM/Opus), and the
fake answers audio it did not make itself with its fixed transcript (sim/speech.py) — so this test proves the path
(browser -> console -> gateway -> engine -> composer), not recognition.
"""

from __future__ import annotations

import math
import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from sim.speech import FIXED_TRANSCRIPT
from tests.browser.conftest import ADMIN_PASSWORD, chromium_paths, sign_in, wait_for_text
from tests.e2e.cluster import Cluster, running_cluster

pytestmark = pytest.mark.browser

MODEL = 'meta-llama/Llama-3.2-1B-Instruct'
INPUT_JS = 'return document.querySelector(".chat-footer textarea").value'
AUDIO_JS = ('const a = document.getElementById("mr-voice-audio"); '
            'return a ? {time: a.currentTime, paused: a.paused, ended: a.ended, error: a.error && a.error.code, '
            'src: a.currentSrc} : null')


@pytest.fixture(scope='module')
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    settings = {'REGISTRY_RELOAD_INTERVAL': '0.5', 'BACKEND_CHECK_INTERVAL': '1'}
    engines = {'sim-vllm': ('vllm', ['--token-delay-ms', '5', '--tokens', '30']),
               'speaches': ('stt', ['--flavor', 'speaches', '--chunk-delay-ms', '30'])}
    with running_cluster(tmp_path_factory.mktemp('voice'), engines, settings=settings, admin_password=ADMIN_PASSWORD,
                         unlimited=True) as cluster:
        yield cluster


@pytest.fixture(scope='module')
def microphone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of a warbling tone at 48 kHz: what Chromium's fake microphone plays."""
    path = tmp_path_factory.mktemp('mic') / 'voice.wav'
    rate = 48_000
    with wave.open(str(path), 'wb') as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b''.join(struct.pack('<h', int(9000 * math.sin(2 * math.pi * (300 + 80 * math.sin(i / 4000))
                                                                          * i / rate))) for i in range(rate * 3)))
    return path


@pytest.fixture(scope='module')
def browser(microphone_file: Path) -> Iterator[webdriver.Chrome]:
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    for argument in ('headless=new', 'no-sandbox', 'disable-dev-shm-usage', 'window-size=1400,1000',
                     'use-fake-device-for-media-stream', 'use-fake-ui-for-media-stream',
                     f'use-file-for-fake-audio-capture={microphone_file}', 'autoplay-policy=no-user-gesture-required'):
        options.add_argument(argument)
    options.binary_location = binary
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def _open_chat(browser: webdriver.Chrome, console: Cluster) -> None:
    sign_in(browser, console.url, 'root', ADMIN_PASSWORD)
    WebDriverWait(browser, 20).until(lambda driver: driver.current_url.endswith('/admin'))
    browser.get(f'{console.url}/chat')
    wait_for_text(browser, MODEL, timeout=20)


def test_speak_a_message_then_hear_the_answer(console: Cluster, browser: webdriver.Chrome) -> None:
    _open_chat(browser, console)
    picker = browser.find_element(By.CSS_SELECTOR, '.chat-voice-picker')
    assert 'af_alloy' in picker.text  # the first voice the fake Speaches lists is chosen

    mic = browser.find_element(By.CSS_SELECTOR, '.chat-mic')
    mic.click()  # Chromium's fake microphone starts playing the WAV into the recorder
    WebDriverWait(browser, 10).until(lambda d: 'stop' in d.find_element(By.CSS_SELECTOR, '.chat-mic').text)
    time.sleep(1.5)
    browser.find_element(By.CSS_SELECTOR, '.chat-mic').click()  # stop: the recording goes to the gateway
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(INPUT_JS) == FIXED_TRANSCRIPT)
    heard = httpx.get(f'{console.sims["speaches"]}/_sim/stats').json()
    assert heard['transcriptions'] == 1 and heard['last_fields']['model'] == 'Systran/faster-whisper-small'

    browser.find_element(By.CSS_SELECTOR, '.chat-footer textarea').send_keys(Keys.ENTER)
    wait_for_text(browser, '30 completion tokens', timeout=30)
    browser.find_elements(By.CSS_SELECTOR, '.chat-read-aloud')[-1].click()
    WebDriverWait(browser, 30).until(lambda d: (d.execute_script(AUDIO_JS) or {}).get('time', 0) > 0.2)
    state = browser.execute_script(AUDIO_JS)
    assert state['error'] is None and '/chat/speech/' in state['src']
    spoken = httpx.get(f'{console.sims["speaches"]}/_sim/stats').json()
    assert spoken['speech_requests'] == 1 and spoken['last_speech']['response_format'] == 'wav'
    assert spoken['last_speech']['voice'] == 'af_alloy'
    again = browser.execute_async_script('fetch(arguments[0]).then((r) => arguments[1](r.status))', state['src'])
    assert again == 404  # the link worked once (and only for this signed-in browser: the console's gate guards it)

    def audited() -> set[str]:
        rows = httpx.get(f'{console.url}/api/admin/audit', headers={'X-API-Key': console.admin_key},
                         params={'limit': 20}).json()['rows']
        return {row['endpoint'] for row in rows if row['user'] == 'root'}

    WebDriverWait(browser, 10).until(lambda _: {'/v1/audio/transcriptions', '/v1/audio/speech'} <= audited())


def test_voice_controls_hide_without_a_speech_backend(console: Cluster, browser: webdriver.Chrome) -> None:
    admin = {'X-API-Key': console.admin_key}
    backends = httpx.get(f'{console.url}/api/admin/backends', headers=admin).json()
    speaches = next(b for b in backends if b['name'] == 'speaches')
    httpx.post(f'{console.url}/api/admin/backends/{speaches["id"]}/disable', headers=admin).raise_for_status()
    try:
        time.sleep(1.5)  # the console's process reloads the registry every 0.5 s
        browser.get(f'{console.url}/chat')
        wait_for_text(browser, MODEL, timeout=20)
        assert not [e for e in browser.find_elements(By.CSS_SELECTOR, '.chat-mic') if e.is_displayed()]
        assert not [e for e in browser.find_elements(By.CSS_SELECTOR, '.chat-voice-picker') if e.is_displayed()]
    finally:
        httpx.post(f'{console.url}/api/admin/backends/{speaches["id"]}/enable', headers=admin)


