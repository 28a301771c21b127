"""Single sign-on in headless Chromium: the gateway as a process configured for a real OpenID Connect provider on
loopback (tests/oidc.py); the browser clicks the provider's button, authorizes at the provider and lands on its
dashboard, a new account made on the way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import wait_for_text
from tests.e2e.cluster import Cluster, running_cluster
from tests.oidc import CLIENT_ID, CLIENT_SECRET, TENANT, OidcProvider, new_subject

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def sso_console(tmp_path_factory: pytest.TempPathFactory, oidc_server: OidcProvider) -> Iterator[Cluster]:
    settings = {'OIDC_METADATA_URL': oidc_server.metadata_url, 'OIDC_CLIENT_ID': CLIENT_ID,
                'OIDC_CLIENT_SECRET': CLIENT_SECRET, 'OIDC_TENANT_ID': TENANT,
                'OIDC_DISPLAY_NAME': 'Sign in with Campus ID', 'OIDC_ROLE_MAP': '{"Faculty": "faculty"}'}
    with running_cluster(tmp_path_factory.mktemp('sso'), {}, settings=settings) as cluster:
        yield cluster


def test_the_provider_button_signs_a_new_person_in_to_their_dashboard(
        sso_console: Cluster, oidc_server: OidcProvider, browser: webdriver.Chrome) -> None:
    sub, oid = new_subject()
    oidc_server.set_user(sub, tid=TENANT, oid=oid, name='Marie Curie', email='marie@campus.example',
                         preferred_username='marie@campus.example', roles=['Faculty'])
    browser.delete_all_cookies()
    browser.get(f'{sso_console.url}/login')
    wait_for_text(browser, 'Sign in with Campus ID')
    browser.find_element(By.XPATH, '//*[contains(normalize-space(.), "Sign in with Campus ID")]/ancestor::a').click()

    WebDriverWait(browser, 15).until(lambda driver: driver.current_url.startswith(oidc_server.issuer))
    browser.find_element(By.NAME, 'sub').send_keys(sub)  # at the provider: who signs in, then Authorize
    browser.find_element(By.XPATH, '//button[normalize-space(.)="Authorize"]').click()

    WebDriverWait(browser, 20).until(lambda driver: driver.current_url == f'{sso_console.url}/dashboard')
    wait_for_text(browser, 'Signed in as marie@campus.example (faculty).')
    wait_for_text(browser, 'Log out')
