"""Single sign-on accounts and providers on SQLite and MariaDB: just-in-time users with unique names, the
identity key, the console's providers (secret sealed, kept when not retyped), and linking."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from core.accounts import service as accounts
from core.accounts import sso_admin, sso_users
from core.accounts.sso_admin import ProviderInput
from core.accounts.sso_claims import SignInRefused
from core.accounts.sso_config import ProviderConfig, enabled_providers, find_provider, secret_box
from core.accounts.sso_users import sign_in_with
from core.admin.cluster_actions import Actor
from core.config import get_settings
from core.db import Database
from core.errors import Conflict, InvalidRequest, UnknownRole
from core.models import AdminAction, ExternalIdentity, SsoProvider, User

ADMIN = Actor(id=None, name='tester')
PROVIDER = ProviderConfig(name='kc', display_name='KC', metadata_url='https://kc.example/m', client_id='c',
                          client_secret='s', role_claim='roles', role_map={'prof': 'faculty'}, source='console')


def claims(sub: str, **more: object) -> dict[str, object]:
    return {'iss': 'https://kc.example/realms/uni', 'sub': sub, **more}


async def test_just_in_time_users_get_unique_names_and_one_account_per_identity(database: Database) -> None:
    async with database.session() as session:
        await accounts.create_user(session, username='sam', role='student')
        first = await sign_in_with(session, PROVIDER, claims('s-1', preferred_username='sam', roles=['prof']))
        second = await sign_in_with(session, PROVIDER, claims('s-2', preferred_username='sam'))
        again = await sign_in_with(session, PROVIDER, claims('s-1', preferred_username='samuel'))
    assert (first.username, second.username) == ('sam-2', 'sam-3')
    assert again.id == first.id and again.username == 'sam-2'
    async with database.session() as session:
        identities = list(await session.exec(select(ExternalIdentity).order_by(ExternalIdentity.subject)))
        created = list(await session.exec(select(AdminAction).where(AdminAction.action == 'user.create')))
    assert [(i.issuer, i.subject, i.provider) for i in identities] == [
        ('https://kc.example/realms/uni', 's-1', 'kc'), ('https://kc.example/realms/uni', 's-2', 'kc')]
    assert [(entry.actor, entry.via) for entry in created] == [('sam-2', 'sso'), ('sam-3', 'sso')]


async def test_a_missing_default_role_refuses_with_a_reason(database: Database) -> None:
    broken = replace(PROVIDER, default_role='wizard')  # names a role that does not exist
    async with database.session() as session:
        with pytest.raises(SignInRefused) as refused:
            await sign_in_with(session, broken, claims('s-9'))
    assert "default role 'wizard' does not exist" in refused.value.reason


async def test_console_providers_keep_their_secret_sealed(database: Database) -> None:
    settings = get_settings()
    data = ProviderInput(name='campus', display_name='Campus', metadata_url='https://kc.example/.well-known/x',
                         client_id='cid', client_secret='first-secret', role_map={'prof': 'faculty'})
    async with database.session() as session:
        await sso_admin.save_provider(session, settings, actor=ADMIN, data=data, create=True)
        with pytest.raises(Conflict):
            await sso_admin.save_provider(session, settings, actor=ADMIN, data=data, create=True)
        changed = data.model_copy(update={'display_name': 'Campus SSO', 'client_secret': ''})
        row = await sso_admin.save_provider(session, settings, actor=ADMIN, data=changed, create=False)
        assert row.has_secret and row.display_name == 'Campus SSO'
        stored = (await session.exec(select(SsoProvider))).one()
        assert 'first-secret' not in stored.client_secret
        assert secret_box(settings).open(stored.client_secret) == 'first-secret'  # kept: not retyped
        found = await find_provider(session, settings, 'campus')
        assert found is not None and found.client_secret == 'first-secret' and found.source == 'console'
        assert [p.name for p in await enabled_providers(session, settings)] == ['campus']
        log = list(await session.exec(select(AdminAction).where(AdminAction.target == 'sso provider campus')))
        assert 'first-secret' not in str([(e.before, e.after) for e in log])

        refusals: list[tuple[dict[str, object], type[Exception]]] = [
            ({'name': 'oidc'}, InvalidRequest), ({'name': 'Not A URL Name!'}, InvalidRequest),
            ({'name': 'x', 'metadata_url': 'http://kc.example/m'}, InvalidRequest),
            ({'name': 'y', 'role_map': {'p': 'wizard'}}, UnknownRole)]
        for update, error in refusals:
            with pytest.raises(error):
                await sso_admin.save_provider(session, settings, actor=ADMIN, data=data.model_copy(update=update),
                                              create=True)

        await sso_admin.delete_provider(session, actor=ADMIN, name='campus')
        assert await find_provider(session, settings, 'campus') is None


async def test_an_identity_with_a_taken_email_waits_for_an_admin_to_link_it(database: Database) -> None:
    async with database.session() as session:
        await accounts.create_user(session, username='lee', role='staff', password='lee-password-1',
                                   email='lee@uni.example')
        with pytest.raises(SignInRefused):
            await sign_in_with(session, PROVIDER, claims('s-lee', email='lee@uni.example', name='Lee'))
        [waiting] = await sso_admin.pending_identities(session)
        assert (waiting.owner, waiting.email, waiting.display_name) == ('lee', 'lee@uni.example', 'Lee')
        await sso_admin.link_identity(session, actor=ADMIN, identity_id=waiting.id, username='lee')
        with pytest.raises(Conflict):
            await sso_admin.link_identity(session, actor=ADMIN, identity_id=waiting.id, username='lee')
        user = await sign_in_with(session, PROVIDER, claims('s-lee', email='lee@uni.example', roles=['prof']))
        assert user.username == 'lee' and user.password_hash is not None
        assert await sso_admin.pending_identities(session) == []
        assert len(list(await session.exec(select(User)))) == 1


async def test_a_username_taken_in_the_meantime_gets_a_random_suffix(database: Database,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    free = sso_users._free_username

    async def stale(session: object, base: str, *, random_suffix: bool) -> str:  # another sign-in won the race
        return 'sam' if not random_suffix else await free(session, base, random_suffix=True)  # type: ignore[arg-type]

    monkeypatch.setattr(sso_users, '_free_username', stale)
    async with database.session() as session:
        await accounts.create_user(session, username='sam', role='student')
        user = await sign_in_with(session, PROVIDER, claims('s-race', preferred_username='sam', roles=['prof']))
    assert user.username.startswith('sam-') and len(user.username) == len('sam-') + 6
