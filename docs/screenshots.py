"""Screenshots of the console's main pages, for docs/ui.md, taken against the demo cluster.

    .venv/bin/python docs/screenshots.py            # writes docs/img/*.png

Starts `mindrouter serve --demo` on a free port with a throw-away data folder (simulated engines and a
simulated two-GPU node), sends some traffic as the demo users so the charts and tables have something to
show, files a quota request, then signs in with headless Chromium (Debian `chromium` + `chromium-driver`) as
`admin` and as `student1` and saves one PNG per page.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

DOCS = Path(__file__).resolve().parent
IMAGES = DOCS / 'img'
BIN = Path(sys.executable).parent

# (file name, path, who, seconds to let live parts fill in)
PAGES = (
    ('status', '/', None, 3),
    ('models', '/models', None, 2),
    ('dashboard', '/dashboard', 'student1', 3),
    ('chat', '/chat', 'student1', 2),
    ('admin-overview', '/admin', 'admin', 4),
    ('admin-nodes', '/admin/nodes', 'admin', 12),
    ('admin-backends', '/admin/backends', 'admin', 3),
    ('admin-models', '/admin/models', 'admin', 2),
    ('admin-users', '/admin/users', 'admin', 2),
    ('admin-quota-requests', '/admin/quota-requests', 'admin', 2),
    ('admin-queue', '/admin/queue', 'admin', 2),
    ('admin-audit', '/admin/audit', 'admin', 3),
    ('admin-log', '/admin/log', 'admin', 2),
    ('admin-settings', '/admin/settings', 'admin', 2),
)
PASSWORDS = {'admin': 'admin123', 'student1': 'student123', 'faculty1': 'faculty123'}


def main() -> int:
    IMAGES.mkdir(exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix='mindrouter-screens-'))
    port = _free_port()
    url = f'http://127.0.0.1:{port}'
    env = {**os.environ, 'DATA_DIR': str(data), 'LOG_LEVEL': 'warning', 'NODE_POLL_INTERVAL': '2',
           'TELEMETRY_SAMPLE_INTERVAL': '5'}
    env.pop('DATABASE_URL', None)
    with (data / 'server.log').open('w') as log, subprocess.Popen(
            [str(BIN / 'mindrouter'), 'serve', '--demo', '--port', str(port)], env=env, stdout=log,
            stderr=subprocess.STDOUT) as server:
        try:
            _wait(f'{url}/readyz')
            _traffic(url, env)
            driver = _browser()
            try:
                for name, path, who, settle in PAGES:
                    if who is not None:
                        _sign_in(driver, url, who)
                    else:
                        driver.get(f'{url}/logout')
                    driver.get(f'{url}{path}')
                    time.sleep(settle)
                    if name == 'chat':  # a conversation, not an empty page
                        box = driver.find_element(By.TAG_NAME, 'textarea')
                        box.send_keys('How does fair-share scheduling keep one user from taking every GPU?', Keys.ENTER)
                        time.sleep(5)
                    height = driver.execute_script('return document.body.scrollHeight')
                    driver.set_window_size(1440, min(max(900, int(height) + 40), 2400))
                    driver.save_screenshot(str(IMAGES / f'{name}.png'))
                    print(f'{name}.png  {path}')
            finally:
                driver.quit()
        finally:
            server.terminate()
            server.wait(timeout=20)
            shutil.rmtree(data, ignore_errors=True)
    return 0


def _traffic(url: str, env: dict[str, str]) -> None:
    """A morning's worth of requests from three users, and one quota request."""
    keys = {user: subprocess.run([str(BIN / 'mindrouter'), 'create-key', user, '--name', 'screenshots'], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip() for user in PASSWORDS}
    models = [m['id'] for m in httpx.get(f'{url}/v1/models', headers={'X-API-Key': keys['admin']}).json()['data']
              if m.get('modality') == 'chat']
    with httpx.Client(timeout=60) as client:
        for i in range(18):
            user = ('faculty1', 'student1', 'admin')[i % 3]
            client.post(f'{url}/v1/chat/completions', headers={'X-API-Key': keys[user]}, json={
                'model': models[i % len(models)], 'max_tokens': 24,
                'messages': [{'role': 'user', 'content': f'Explain GPU scheduling, part {i}.'}]})
        client.post(f'{url}/api/account/quota-requests', headers={'X-API-Key': keys['student1']},
                    json={'requested_tokens': 2_000_000,
                          'justification': 'Thesis experiments need a larger budget this month.'})


def _browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for argument in ('headless=new', 'no-sandbox', 'disable-dev-shm-usage', 'window-size=1440,900',
                     'hide-scrollbars'):
        options.add_argument(argument)
    options.binary_location = os.environ.get('CHROME_BINARY_LOCATION') or shutil.which('chromium') or 'chromium'
    return webdriver.Chrome(options=options, service=Service(shutil.which('chromedriver') or 'chromedriver'))


def _sign_in(driver: webdriver.Chrome, url: str, who: str) -> None:
    driver.get(f'{url}/logout')
    driver.get(f'{url}/login')
    WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, 'input')))
    username, password = driver.find_elements(By.CSS_SELECTOR, 'input')[:2]
    username.send_keys(who)
    password.send_keys(PASSWORDS[who])
    driver.find_element(By.XPATH, '//button[contains(., "Log in")]').click()
    WebDriverWait(driver, 15).until(lambda d: '/login' not in d.current_url)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f'{url} did not come up')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


if __name__ == '__main__':
    sys.exit(main())
