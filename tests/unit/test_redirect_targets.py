"""Where the login page may send a browser afterwards: paths on this site only (components/session.py)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from components.session import same_site_path

HOSTILE = [
    'https://evil.example/phish',
    'http:evil.example',
    '//evil.example',
    '///evil.example',
    '/\\evil.example/phish',  # what /login?redirect_to=/%5Cevil.example/phish decodes to: browsers read //
    '\\\\evil.example',
    '\\/evil.example',
    '/\t/evil.example',  # browsers drop tabs and newlines from URLs
    '/\n/evil.example',
    '/\r\n/evil.example',
    ' //evil.example',
    '/%5Cevil.example',  # one layer of encoding more than it looks
    '/%5cevil.example',
    '/%2F/evil.example',
    '/%09/evil.example',
    '/%0d%0a/evil.example',
    '/%0D%0ASet-Cookie:%20session=fixed',
    '/%255Cevil.example',  # two layers
    '/%25255Cevil.example',  # three
    '%2F%2Fevil.example',
    'javascript:alert(document.cookie)',
    'JavaScript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'evil.example',
    '',
]


@pytest.mark.parametrize('target', HOSTILE)
def test_a_hostile_target_is_refused(target: str) -> None:
    assert same_site_path(target) == ''


@pytest.mark.parametrize('target', ['/dashboard', '/admin/audit', '/chat/12', '/models?q=llama#top',
                                    '/admin/users/some%20one', '/docs/'])
def test_a_path_on_this_site_is_kept(target: str) -> None:
    assert same_site_path(target) == target


def test_backslashes_inside_a_path_become_slashes() -> None:
    assert same_site_path('/admin\\audit') == '/admin/audit'


@pytest.mark.parametrize('target', HOSTILE)
def test_nothing_that_passes_leaves_the_site_when_decoded_again(target: str) -> None:
    kept = same_site_path(target) or '/'
    for _ in range(4):
        parts = urlsplit(kept.replace('\\', '/'))
        assert not parts.scheme and not parts.netloc and kept.startswith('/') and not kept.startswith('//')
        kept = unquote(kept)
