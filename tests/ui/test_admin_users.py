"""An admin manages people from /admin/users: creates accounts, changes roles, deactivates, sets quota
overrides, revokes keys and edits role defaults; every change lands in the admin log."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
from nicegui import ui
from nicegui.testing import User
from sqlmodel import col, select

from core.accounts import service as accounts
from core.chat import conversations as chat
from core.db import Database
from core.models import AdminAction, Conversation, QuotaOverride, RequestLog, Role
from core.models import User as Account
from tests.ui.conftest import ADMIN, STUDENT, log_in


async def open_as_admin(user: User, path: str) -> None:
    await user.open(f'/login?redirect_to={path}')
    user.find(marker='login-username').type(ADMIN[0])
    user.find(marker='login-password').type(ADMIN[1])
    user.find(marker='login-submit').click()
    await user.should_see(marker=f'user-row-{STUDENT[0]}', retries=50)  # after argon2 and the first query


async def actions(database: Database) -> list[tuple[str, str, str]]:
    async with database.session() as session:
        rows = await session.exec(select(AdminAction).order_by(col(AdminAction.id)))
        return [(row.action, row.target, row.via) for row in rows]


async def test_an_admin_creates_a_user_and_the_form_says_what_is_wrong(people: Database, user: User) -> None:
    await open_as_admin(user, '/admin/users')
    user.find(marker='users-new').click()
    user.find(marker='new-username').type('new person')
    await user.should_see('Use 1-64 letters')
    user.find(marker='new-username').clear().type('newbie')
    user.find(marker='new-email').type('newbie@uni.edu')
    user.find(marker='new-password').type('short')
    await user.should_see('At least 8 characters')
    user.find(marker='new-password').clear().type('long enough pass')
    user.find(marker='new-submit').click()
    await user.should_see('User newbie created', retries=30)  # argon2 hashes the password first
    await user.should_see(marker='user-row-newbie')
    await user.should_see(marker='detail-newbie')

    user.find(marker='users-new').click()
    user.find(marker='new-username').type(STUDENT[0])
    user.find(marker='new-submit').click()
    await user.should_see('already exists')  # told in the form, not as a crash

    async with people.session() as session:
        created = await accounts.get_user(session, username='newbie')
        assert created.email == 'newbie@uni.edu' and created.password_hash is not None
    assert ('user.create', 'user newbie', 'console') in await actions(people)


async def test_changing_the_students_role_shows_in_the_table(people: Database, user: User) -> None:
    await open_as_admin(user, '/admin/users')
    user.find(marker=f'manage-{STUDENT[0]}').click()
    await user.should_see(marker=f'detail-{STUDENT[0]}')
    user.find(marker='user-role').click()
    with user.scope(marker=f'detail-{STUDENT[0]}'):
        user.find('Staff').click()
    user.find(marker='user-save').click()
    await user.should_see(f'{STUDENT[0]} saved')
    with user.scope(marker=f'user-row-{STUDENT[0]}'):
        await user.should_see('staff')
    [change] = [a for a in await actions(people) if a[0] == 'user.role']
    assert change == ('user.role', f'user {STUDENT[0]}', 'console')


async def test_a_deactivated_student_can_neither_sign_in_nor_use_a_key(
        people: Database, admin_api: httpx.AsyncClient, user: User) -> None:
    async with people.session() as session:
        _, key = await accounts.create_api_key(session, username=STUDENT[0], name='laptop')
    await open_as_admin(user, '/admin/users')
    user.find(marker=f'manage-{STUDENT[0]}').click()
    await user.should_see(marker='user-deactivate')
    user.find(marker='user-deactivate').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see(f'{STUDENT[0]} deactivated')
    with user.scope(marker=f'user-row-{STUDENT[0]}'):
        await user.should_see('deactivated')

    refused = await admin_api.get('/v1/models', headers={'X-API-Key': key})
    assert refused.status_code == 403, refused.text
    await user.open('/logout')
    await log_in(user, *STUDENT)
    await user.should_see('Wrong username or password, or the account is deactivated.', retries=30)
    assert ('user.deactivate', f'user {STUDENT[0]}', 'console') in await actions(people)


async def test_an_admin_sets_a_token_budget_and_revokes_a_key(people: Database, user: User) -> None:
    async with people.session() as session:
        await accounts.create_api_key(session, username=STUDENT[0], name='laptop')
        [(row, _)] = await accounts.list_api_keys(session, username=STUDENT[0])
    await open_as_admin(user, '/admin/users')
    user.find(marker=f'manage-{STUDENT[0]}').click()
    await user.should_see(marker='quota-tokens')
    user.find(marker='quota-tokens').type('5000')
    user.find(marker='quota-note').type('capstone project')
    user.find(marker='quota-save').click()
    await user.should_see('Quota overrides saved')
    await user.should_see('5,000 tokens')

    user.find(marker=f'revoke-{row.id}').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('revoked')
    async with people.session() as session:
        student = await accounts.get_user(session, username=STUDENT[0])
        override = await session.get(QuotaOverride, student.id)
        assert override is not None and override.token_budget == 5000 and override.note == 'capstone project'
        [(after, _)] = await accounts.list_api_keys(session, username=STUDENT[0])
        assert after.status == 'revoked'
    logged = [a[0] for a in await actions(people)]
    assert 'user.quota' in logged and 'api_key.revoke' in logged


async def test_an_admin_edits_a_roles_weight(people: Database, user: User) -> None:
    await open_as_admin(user, '/admin/users')
    await user.should_see(marker='role-weight-student')
    user.find(marker='role-weight-student').clear().type('3')
    user.find(marker='role-save-student').click()
    await user.should_see('Role student saved')
    async with people.session() as session:
        role = (await session.exec(select(Role).where(Role.name == 'student'))).one()
        assert role.scheduler_weight == 3
    assert ('role.update', 'role student', 'console') in await actions(people)


async def test_two_hundred_users_page_by_25_and_search_finds_one(people: Database, user: User) -> None:
    async with people.session() as session:
        student = (await session.exec(select(Role).where(Role.name == 'student'))).one()
        assert student.id is not None
        session.add_all(Account(username=f'user{i:03d}', email=f'user{i:03d}@uni.edu', role_id=student.id)
                        for i in range(200))
        await session.commit()
    await open_as_admin(user, '/admin/users')
    await user.should_see('1-25 of 202')
    assert len(rows_shown(user)) == 25
    user.find(marker='users-next').click()
    await user.should_see('26-50 of 202')
    assert rows_shown(user)[0] == 'user-row-user023'  # page one: root, stu, then user000 to user022
    user.find(marker='users-prev').click()
    await user.should_see('1-25 of 202')
    user.find(marker='users-search').type('user199')
    await user.should_see('1-1 of 1')
    assert rows_shown(user) == ['user-row-user199']


def rows_shown(user: User) -> list[str]:
    with user:
        table = next(iter(user.find(marker='users-table').elements))
        return [marker for element in table.default_slot.children if isinstance(element, ui.row)
                for marker in element._markers]


async def test_an_admin_erases_a_students_stored_content(people: Database, user: User) -> None:
    async with people.session() as session:
        student = await accounts.get_user(session, username=STUDENT[0])
        assert student.id is not None
        conversation = await chat.create_conversation(session, user_id=student.id, title='homework')
        await chat.add_message(session, user_id=student.id, conversation_id=conversation.id or 0, role='user',
                               content='my essay draft')
        session.add(RequestLog(request_id='essay-1', user_id=student.id, endpoint='/v1/chat/completions',
                               status='completed', prompt='my essay draft', response='a grade'))
        await session.commit()
    await open_as_admin(user, '/admin/users')
    user.find(marker=f'manage-{STUDENT[0]}').click()
    await user.should_see(marker='content-erase')
    user.find(marker='content-erase').click()
    await user.should_see(marker='confirm-ok')
    user.find(marker='confirm-ok').click()
    await user.should_see('Erased: 1 audit records blanked, 1 conversations', retries=30)

    async with people.session() as session:
        row = (await session.exec(select(RequestLog).where(RequestLog.request_id == 'essay-1'))).one()
        left = list(await session.exec(select(Conversation).where(Conversation.user_id == student.id)))
    assert (row.prompt, row.response, row.status, left) == (None, None, 'completed', [])
    assert ('user.content.erase', STUDENT[0], 'console') in await actions(people)


async def test_the_console_export_is_a_zip_for_admins_only(people: Database, user: User) -> None:
    async with people.session() as session:
        student = await accounts.get_user(session, username=STUDENT[0])
        session.add(RequestLog(request_id='q-1', user_id=student.id, endpoint='/api/chat', status='completed',
                               prompt='what is entropy', response='a measure'))
        await session.commit()
    await open_as_admin(user, '/admin/users')
    user.find(marker=f'manage-{STUDENT[0]}').click()
    await user.should_see(marker='content-export')
    response = await user.http_client.get(f'/admin/users/{STUDENT[0]}/export.zip')
    assert response.status_code == 200 and response.headers['content-type'] == 'application/zip'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        [row] = [json.loads(line) for line in archive.read('requests.jsonl').splitlines()]
    assert (row['request_id'], row['prompt']) == ('q-1', 'what is entropy')
    assert ('user.content.export', STUDENT[0], 'console') in await actions(people)
    assert (await user.http_client.get('/admin/users/nobody/export.zip')).status_code == 404


async def test_a_student_cannot_download_a_users_export(people: Database, user: User) -> None:
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=100)
    assert (await user.http_client.get(f'/admin/users/{STUDENT[0]}/export.zip')).status_code == 403
