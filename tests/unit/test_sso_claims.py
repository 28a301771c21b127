"""What a token's claims mean: the identity's key (never an email), the tenant check, the role claim's values,
the username made from them, and every claim bounded and cleaned (they come from outside)."""

from __future__ import annotations

import pytest

from core.accounts.sso_claims import (
    SignInRefused,
    claim_values,
    clean,
    groups_overage,
    identity_key,
    kept_claims,
    mapped_roles,
    profile,
    username_base,
)
from core.accounts.sso_config import ProviderConfig, check_metadata_url, parse_role_map
from core.config import InvalidSettings, get_settings, reset_settings
from core.errors import InvalidRequest

TENANT = 'aaaabbbb-0000-1111-2222-333344445555'


def provider(**changes: object) -> ProviderConfig:
    base: dict[str, object] = {'name': 'oidc', 'display_name': 'x', 'metadata_url': 'https://idp.example/m',
                               'client_id': 'c', 'client_secret': 's'}
    return ProviderConfig(**(base | changes))  # type: ignore[arg-type]


def test_entra_identities_are_keyed_on_tenant_and_object_id_never_on_email() -> None:
    entra = provider(tenant_id=TENANT)
    key = identity_key({'tid': TENANT.upper(), 'oid': 'o-1', 'sub': 'pairwise', 'email': 'a@x.edu'}, entra)
    assert key == (f'entra:{TENANT}', 'o-1')
    with pytest.raises(SignInRefused) as other:
        identity_key({'tid': 'another-tenant', 'oid': 'o-1'}, entra)
    assert 'is not the configured' in other.value.reason
    with pytest.raises(SignInRefused):
        identity_key({'tid': TENANT}, entra)  # no oid (the profile scope is missing)


def test_other_providers_are_keyed_on_issuer_and_subject() -> None:
    assert identity_key({'iss': 'https://kc.example/realms/uni', 'sub': 's-1'}, provider()) == \
        ('https://kc.example/realms/uni', 's-1')
    with pytest.raises(SignInRefused):
        identity_key({'iss': 'https://kc.example', 'sub': 'x' * 300}, provider())  # would not fit: refused


def test_claim_values_are_bounded_and_only_strings() -> None:
    assert claim_values({'roles': 'Faculty'}, 'roles') == ['Faculty']
    assert claim_values({'roles': ['a', 3, None, 'x' * 300, 'b']}, 'roles') == ['a', 'b']
    assert len(claim_values({'groups': ['g'] * 5000}, 'groups')) == 1000
    assert claim_values({'roles': {'not': 'a list'}}, 'roles') == []


def test_role_map_and_group_overage() -> None:
    config = provider(role_claim='groups', role_map={'g-fac': 'faculty', 'g-adm': 'admin'})
    assert mapped_roles({'groups': ['g-fac', 'g-adm', 'other']}, config) == {'faculty', 'admin'}
    assert groups_overage({'_claim_names': {'groups': 'src1'}}, 'groups')
    assert not groups_overage({'groups': [], '_claim_names': {'groups': 'src1'}}, 'groups')


@pytest.mark.parametrize(('claims', 'expected'), [
    ({'preferred_username': 'ada@campus.edu'}, 'ada@campus.edu'),
    ({'preferred_username': '  ..José Müller!! '}, 'Jos-M-ller'),
    ({'email': 'x@y.org'}, 'x@y.org'),
    ({'preferred_username': '<script>'}, 'script'),
    ({'preferred_username': '@@@'}, 'user'),
    ({'preferred_username': 'a' * 300}, 'a' * 56),
])
def test_usernames_come_from_preferred_username_or_email(claims: dict[str, str], expected: str) -> None:
    found = profile({'iss': 'https://i', 'sub': 's', **claims}, provider())
    assert username_base(found) == expected


def test_display_fields_are_cleaned_and_bounded() -> None:
    found = profile({'iss': 'https://i', 'sub': 's', 'name': 'Eve\u202e\x00\nEvil' + 'x' * 1000,
                     'email': 'not-an-email'}, provider())
    assert found.full_name.startswith('EveEvil') and len(found.full_name) == 255
    assert found.email is None
    assert clean(['a list']) == '' and clean(True) == ''
    assert kept_claims({'name': 'n', 'secret_stuff': 'x', 'roles': ['r'] * 500}, provider())['roles'] == ['r'] * 50


def test_settings_checks() -> None:
    assert parse_role_map('{"MindRouter.Admin": "admin"}') == {'MindRouter.Admin': 'admin'}
    assert parse_role_map('  ') == {}
    for bad in ('[1]', '{"a": 1}', 'not json'):
        with pytest.raises(InvalidRequest):
            parse_role_map(bad)
    assert check_metadata_url('http://127.0.0.1:8080/.well-known/openid-configuration')
    for bad in ('http://idp.example/.well-known/openid-configuration', 'ftp://x', 'javascript:alert(1)'):
        with pytest.raises(InvalidRequest):
            check_metadata_url(bad)


def test_oidc_settings_are_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value, problem in (('OIDC_ROLE_MAP', '{"a": 1}', 'OIDC_ROLE_MAP'),
                                 ('OIDC_METADATA_URL', 'http://idp.example/.well-known/openid-configuration', 'https')):
        monkeypatch.setenv(name, value)
        reset_settings()
        with pytest.raises(InvalidSettings, match=problem):
            get_settings()
        monkeypatch.delenv(name)
    monkeypatch.setenv('OIDC_METADATA_URL', 'http://localhost:8080/.well-known/openid-configuration')
    reset_settings()
    assert get_settings().oidc_metadata_url.startswith('http://localhost')
