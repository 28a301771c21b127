"""Single sign-on through a real OpenID Connect provider on loopback (tests/oidc.py), driven the way a browser
goes: the button's GET, the provider's redirect, "Authorize" at the provider, the callback, the session's new-id
handover, the page. The console is NiceGUI's simulated user; the provider is oidc-provider-mock."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from app.cli import main as cli
from core.accounts import service as accounts
from core.accounts import sso_flow, users
from core.accounts.users import UserChanges
from core.admin.cluster_actions import Actor
from core.config import reset_settings
from core.db import Database
from core.models import AdminAction, ExternalIdentity, Role, SsoProvider
from core.models import User as Account
from sim.config import SimConfig
from sim.server import SimServer
from tests.oidc import TENANT, OidcProvider, new_subject
from tests.ui.conftest import ADMIN, STUDENT, log_in

SLOW = 50  # retries of 0.1 s


async def follow(user: User, path: str) -> httpx.Response:
    """GET `path` on the console and follow redirects while they stay on this site."""
    response = await user.http_client.get(path)
    for _ in range(10):
        location = response.headers.get('location', '')
        if response.status_code not in (302, 303, 307) or not location.startswith('/'):
            return response
        response = await user.http_client.get(location)
    raise AssertionError(f'redirect loop from {path}')


async def sso_sign_in(user: User, provider: OidcProvider, sub: str, *,
                      start: str = '/auth/oidc/login') -> httpx.Response:
    """Press the provider's button, sign in as `sub` there, come back: the last response on this site."""
    begun = await user.http_client.get(start)
    assert begun.status_code == 302, begun.text
    return await follow(user, provider.authorize(begun.headers['location'], sub))


async def account(database: Database, oid: str) -> tuple[Account, Role]:
    async with database.session() as session:
        identity = (await session.exec(select(ExternalIdentity).where(ExternalIdentity.subject == oid))).one()
        row = (await session.exec(select(Account, Role).join(Role).where(Account.id == identity.user_id))).one()
        return row[0], row[1]


async def count_users(database: Database) -> int:
    async with database.session() as session:
        return len(list(await session.exec(select(Account))))


def entra_claims(oid: str, **more: object) -> dict[str, object]:
    return {'tid': TENANT, 'oid': oid, **more}


async def test_first_sign_in_creates_the_account_and_lands_on_the_dashboard(
        people: Database, oidc: OidcProvider, user: User) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, name='Ada Lovelace', email='ada@campus.example',
                                      preferred_username='ada@campus.example'))
    await user.open('/login')
    await user.should_see(marker='sso-oidc')
    await user.should_see('Sign in with Campus ID')
    button, = user.find(marker='sso-oidc').elements
    username_field, = user.find(marker='login-username').elements
    assert button.id < username_field.id  # the provider's button comes above the local form

    before = user.http_client.cookies['session']
    landed = await sso_sign_in(user, oidc, sub)
    assert (landed.status_code, landed.url.path) == (200, '/dashboard')
    assert user.http_client.cookies['session'] != before  # a new session id at sign-in
    await user.open('/dashboard')
    await user.should_see('Signed in as ada@campus.example (student).', retries=SLOW)

    created, role = await account(people, oid)
    assert (created.username, created.full_name, created.email, role.name) == \
        ('ada@campus.example', 'Ada Lovelace', 'ada@campus.example', 'student')
    assert created.password_hash is None and created.last_login_method == 'sso:oidc'
    async with people.session() as session:
        identity = (await session.exec(select(ExternalIdentity).where(ExternalIdentity.subject == oid))).one()
    assert (identity.issuer, identity.provider) == (f'entra:{TENANT}', 'oidc')  # keyed on (tid, oid)


async def test_every_sign_in_refreshes_name_email_and_role_and_finds_the_same_account(
        people: Database, oidc: OidcProvider, user: User) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, name='Grace', email='grace@campus.example', preferred_username='grace'))
    await sso_sign_in(user, oidc, sub)
    first, role = await account(people, oid)
    assert role.name == 'student'
    await user.open('/logout')

    # the person's name, email, username at the provider and app role all changed; the oid did not
    oidc.set_user(sub, **entra_claims(oid, name='Grace Hopper', email='hopper@campus.example',
                                      preferred_username='ghopper', roles=['Faculty']))
    await sso_sign_in(user, oidc, sub)
    again, role = await account(people, oid)
    assert again.id == first.id and again.username == 'grace'  # never keyed on email or preferred_username
    assert (again.full_name, again.email, role.name) == ('Grace Hopper', 'hopper@campus.example', 'faculty')
    await user.open('/dashboard')
    await user.should_see('Signed in as grace (faculty).', retries=SLOW)


async def test_a_token_from_another_tenant_is_refused(people: Database, oidc: OidcProvider, user: User,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, tid='00000000-0000-0000-0000-000000000bad', oid=oid, name='Mallory')
    before = await count_users(people)
    with caplog.at_level(logging.WARNING, logger='mindrouter.sso'):
        refused = await sso_sign_in(user, oidc, sub)
    assert refused.status_code == 403
    assert 'another organisation' in refused.text and 'Traceback' not in refused.text
    assert 'is not the configured' in caplog.text
    assert await count_users(people) == before


@pytest.mark.parametrize(('claim', 'role_map', 'claims', 'expected'), [
    ('roles', None, {'roles': ['MindRouter.Admin']}, 'admin'),
    ('roles', None, {'roles': ['Faculty', 'Unrelated']}, 'faculty'),
    ('groups', '{"6b1f…-staff-group": "staff", "b2c4-faculty-group": "faculty"}',
     {'groups': ['0000-other', 'b2c4-faculty-group']}, 'faculty'),
    ('roles', None, {'roles': ['Nothing.Mapped']}, 'student'),  # OIDC_DEFAULT_ROLE
])
async def test_roles_come_from_the_mapped_claim(
        people: Database, oidc: OidcProvider, user: User, monkeypatch: pytest.MonkeyPatch, claim: str,
        role_map: str | None, claims: dict[str, object], expected: str) -> None:
    monkeypatch.setenv('OIDC_ROLE_CLAIM', claim)
    if role_map:
        monkeypatch.setenv('OIDC_ROLE_MAP', role_map)
    reset_settings()
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, **claims))
    landed = await sso_sign_in(user, oidc, sub)
    assert landed.status_code == 200
    _, role = await account(people, oid)
    assert role.name == expected


async def test_with_no_default_role_an_unmapped_user_is_refused(
        people: Database, oidc: OidcProvider, user: User, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv('OIDC_DEFAULT_ROLE', '')
    reset_settings()
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, roles=['Visitor']))
    before = await count_users(people)
    with caplog.at_level(logging.WARNING, logger='mindrouter.sso'):
        refused = await sso_sign_in(user, oidc, sub)
    assert refused.status_code == 403 and 'no role that gives access' in refused.text
    assert 'no default role' in caplog.text
    assert await count_users(people) == before

    oidc.set_user(sub, **entra_claims(oid, roles=['Faculty']))  # once mapped, in
    assert (await sso_sign_in(user, oidc, sub)).status_code == 200


async def test_with_local_login_off_the_form_is_gone_until_the_break_glass_command(
        people: Database, oidc: OidcProvider, user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('LOCAL_LOGIN', 'false')
    reset_settings()
    await user.open('/login')
    await user.should_see(marker='sso-oidc')
    await user.should_see(marker='login-local-off')
    await user.should_not_see(marker='login-username')
    refused = await user.http_client.post('/login', data={'username': STUDENT[0], 'password': STUDENT[1]})
    assert refused.status_code == 403

    assert await asyncio.to_thread(cli, ['local-login', 'on']) == 0  # an admin at the shell
    await user.open('/login')
    await user.should_see(marker='login-username')
    assert (await user.http_client.post('/login')).status_code == 405  # the form never posts; nothing to refuse
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=SLOW)


async def test_a_replayed_expired_or_foreign_state_is_refused(
        people: Database, oidc: OidcProvider, user: User, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid))
    begun = await user.http_client.get('/auth/oidc/login')
    callback = oidc.authorize(begun.headers['location'], sub)
    assert (await follow(user, callback)).status_code == 200
    await user.open('/logout')
    with caplog.at_level(logging.WARNING, logger='mindrouter.sso'):
        replayed = await follow(user, callback)
    assert replayed.status_code == 403 and 'already used' in replayed.text
    assert 'replayed callback' in caplog.text

    # started in one browser, finished in another: refused (the state is bound to the session that asked)
    begun = await user.http_client.get('/auth/oidc/login')
    callback = oidc.authorize(begun.headers['location'], sub)
    jar = user.http_client.cookies
    user.http_client.cookies = httpx.Cookies()
    try:
        foreign = await follow(user, callback)
    finally:
        user.http_client.cookies = jar
    assert foreign.status_code == 403 and 'another browser' in foreign.text

    monkeypatch.setattr(sso_flow.pending_logins(), '_ttl', -1.0)  # every state is already past its time
    begun = await user.http_client.get('/auth/oidc/login')
    with caplog.at_level(logging.WARNING, logger='mindrouter.sso'):
        expired = await follow(user, oidc.authorize(begun.headers['location'], sub))
    assert expired.status_code == 403 and 'expired' in expired.text
    assert 'state expired' in caplog.text


async def test_a_deactivated_user_is_refused_and_their_open_session_ends(
        people: Database, oidc: OidcProvider, user: User) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, preferred_username='leaver'))
    await sso_sign_in(user, oidc, sub)
    await user.open('/dashboard')
    await user.should_see('Signed in as leaver', retries=SLOW)

    async with people.session() as session:
        admin = await accounts.get_user(session, username=ADMIN[0])
        await users.update_user(session, actor=Actor(id=admin.id, name=admin.username), username='leaver',
                                changes=UserChanges(is_active=False))
    page = await follow(user, '/dashboard')  # the next page load
    assert page.url.path == '/login'
    refused = await sso_sign_in(user, oidc, sub)
    assert refused.status_code == 403 and 'deactivated' in refused.text


async def test_an_sso_user_makes_an_api_key_and_chats_through_it(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, oidc: OidcProvider, user: User) -> None:
    async with SimServer('ollama', SimConfig(tokens=5)) as engine:
        registered = await admin_api.post('/api/admin/backends/register', json={
            'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 2})
        assert registered.status_code == 201, registered.text
        sub, oid = new_subject()
        oidc.set_user(sub, **entra_claims(oid, preferred_username='keymaker', roles=['Faculty']))
        await sso_sign_in(user, oidc, sub)
        await user.open('/dashboard')
        await user.should_see(marker='no-keys', retries=SLOW)
        user.find(marker='new-key').click()
        user.find(marker='key-name').type('notebook')
        user.find(marker='create-key').click()
        await user.should_see(marker='new-key-value', retries=SLOW)
        shown, = user.find(marker='new-key-value').elements
        assert isinstance(shown, ui.label)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(live), base_url='http://mindrouter.test') as api:
            answer = await api.post('/v1/chat/completions', headers={'Authorization': f'Bearer {shown.text}'},
                                    json={'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hi'}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()['choices'][0]['message']['content']


async def test_an_existing_accounts_email_is_not_taken_over_until_an_admin_links_it(
        people: Database, oidc: OidcProvider, user: User) -> None:
    async with people.session() as session:
        stu = await accounts.get_user(session, username=STUDENT[0])
        stu.email = 'stu@campus.example'
        await session.commit()
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, name='Stu Dent', email='stu@campus.example'))
    refused = await sso_sign_in(user, oidc, sub)
    assert refused.status_code == 403 and 'ask an administrator to link' in refused.text

    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-admin', retries=SLOW)
    await user.open('/admin/sso')
    await user.should_see(marker='sso-readonly-oidc', retries=SLOW)  # the environment's provider, read-only
    await user.should_not_see(marker='sso-edit-oidc')
    await user.should_see('Stu Dent')
    async with people.session() as session:
        pending = (await session.exec(select(ExternalIdentity).where(ExternalIdentity.subject == oid))).one()
    user.find(marker=f'sso-link-{pending.id}').click()  # the account with that email is proposed
    await user.should_see(marker='sso-pending-empty', retries=SLOW)
    await user.open('/logout')

    landed = await sso_sign_in(user, oidc, sub)
    assert landed.status_code == 200
    linked, _ = await account(people, oid)
    assert linked.username == STUDENT[0] and linked.password_hash is not None  # the same account, password kept


async def test_the_user_list_says_how_each_user_signs_in_and_when_they_last_did(
        people: Database, oidc: OidcProvider, user: User) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, preferred_username='roamer'))
    await sso_sign_in(user, oidc, sub)
    await user.open('/logout')
    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-admin', retries=SLOW)
    await user.open('/admin/users')
    await user.should_see(marker='user-sign-in-roamer', content='sso: oidc', retries=SLOW)
    await user.should_see(marker='user-last-login-roamer', content='(sso: oidc)')
    await user.should_see(marker=f'user-sign-in-{STUDENT[0]}', content='password')
    await user.should_see(marker=f'user-last-login-{ADMIN[0]}', content='(password)')


async def test_logging_out_signs_out_at_the_provider_too(people: Database, oidc: OidcProvider, user: User) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid))
    await sso_sign_in(user, oidc, sub)
    out = await user.http_client.get('/logout')
    location = urlsplit(out.headers['location'])
    assert f'{location.scheme}://{location.netloc}' == oidc.issuer and location.path == '/oauth2/end_session'
    query = parse_qs(location.query)
    assert query['id_token_hint'][0].count('.') == 2  # the ID token of this sign-in
    assert query['post_logout_redirect_uri'][0].endswith('/login')
    assert (await follow(user, '/dashboard')).url.path == '/login'  # signed out here already


async def test_hostile_claims_and_redirects(people: Database, oidc: OidcProvider, user: User) -> None:
    sub, oid = new_subject()
    script = '<script>alert(1)</script>'
    oidc.set_user(sub, **entra_claims(oid, name=script + 'x' * 20_000, preferred_username=f'{script}@evil',
                                      email='not an email', roles=['r'] * 5_000))
    landed = await sso_sign_in(user, oidc, sub, start='/auth/oidc/login?redirect_to=https://evil.example/')
    assert landed.url.path == '/dashboard' and landed.status_code == 200  # not evil.example
    created, role = await account(people, oid)
    assert len(created.full_name) == 255 and created.full_name.startswith(script)  # bounded, stored as text
    assert created.username == 'script-alert-1-script-@evil' and created.email is None and role.name == 'student'
    await user.open('/dashboard')
    await user.should_see(f'Signed in as {created.username}', retries=SLOW)

    await user.open('/logout')
    for target in ('//evil.example', '/\\evil.example', '/%2F%2Fevil.example'):
        landed = await sso_sign_in(user, oidc, sub, start=f'/auth/oidc/login?redirect_to={target}')
        assert landed.url.host != 'evil.example' and landed.url.path == '/dashboard', target
        await user.open('/logout')
    landed = await sso_sign_in(user, oidc, sub, start='/auth/oidc/login?redirect_to=/chat')
    assert landed.url.path == '/chat'  # a path on this site is kept

    unknown = await user.http_client.get('/auth/<img src=x>/login')
    assert unknown.status_code == 404 and '<img' not in unknown.text
    forged = await user.http_client.get('/auth/oidc/callback?state=made-up&code=x')
    assert forged.status_code == 403 and 'Traceback' not in forged.text


async def test_an_oversized_id_token_is_refused_with_a_page(people: Database, oidc: OidcProvider, user: User,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    sub, oid = new_subject()
    oidc.set_user(sub, **entra_claims(oid, name='x' * 200_000))
    with caplog.at_level(logging.WARNING, logger='mindrouter.sso'):
        refused = await sso_sign_in(user, oidc, sub)
    assert refused.status_code == 403 and 'could not be verified' in refused.text
    assert 'ExceededSizeError' in caplog.text


async def test_an_admin_adds_a_provider_in_the_console_and_people_sign_in_through_it(
        people: Database, oidc_server: OidcProvider, user: User) -> None:
    """No OIDC_* settings: a generic provider (keyed on iss + sub) added at run time, its secret sealed."""
    sso_flow.forget_clients()
    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-admin', retries=SLOW)
    await user.open('/admin/sso')
    await user.should_see(marker='sso-providers-empty', retries=SLOW)
    user.find(marker='sso-add').click()
    user.find(marker='sso-name').type('Campus')  # names are lower-cased: they are part of the URL
    user.find(marker='sso-display-name').clear().type('Campus Keycloak')
    user.find(marker='sso-metadata-url').type(oidc_server.metadata_url)
    user.find(marker='sso-client-id').type('console-client')
    user.find(marker='sso-save').click()
    await user.should_see('the client secret is required', retries=SLOW)
    user.find(marker='sso-client-secret').type('console-secret-value')
    user.find(marker='sso-role-map').type('{"staff-group": "staff"}')
    user.find(marker='sso-role-claim').clear().type('groups')
    user.find(marker='sso-save').click()
    await user.should_see(marker='sso-provider-campus', retries=SLOW)
    await user.should_see('set (hidden)')
    await user.should_not_see('console-secret-value')
    async with people.session() as session:
        stored = (await session.exec(select(SsoProvider))).one()
        logged = (await session.exec(select(AdminAction).where(AdminAction.action == 'sso.provider.create'))).one()
    assert stored.client_secret.startswith('v1:') and 'console-secret-value' not in stored.client_secret
    assert 'console-secret-value' not in str(logged.after)
    await user.open('/logout')

    await user.open('/login')
    await user.should_see('Campus Keycloak')
    sub, _ = new_subject()
    oidc_server.set_user(sub, preferred_username='kc-user', groups=['staff-group'])
    landed = await sso_sign_in(user, oidc_server, sub, start='/auth/campus/login')
    assert landed.url.path == '/dashboard'
    async with people.session() as session:
        identity = (await session.exec(select(ExternalIdentity).where(ExternalIdentity.subject == sub))).one()
        created = await session.get(Account, identity.user_id)
        assert created is not None
        role = await session.get(Role, created.role_id)
    assert (identity.issuer, identity.provider) == (oidc_server.issuer, 'campus')  # keyed on (iss, sub)
    assert role is not None and (created.username, role.name) == ('kc-user', 'staff')
