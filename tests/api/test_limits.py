"""Admins set role defaults and per-user overrides; a user asks for more quota and sees the decision."""

from __future__ import annotations

import httpx
import pytest


async def test_an_admin_edits_a_role_and_bad_values_are_refused_with_nothing_written(
        admin: httpx.AsyncClient) -> None:
    changed = await admin.patch('/api/admin/roles/student', json={'scheduler_weight': 2, 'rpm_limit': 30})
    assert changed.status_code == 200, changed.text
    assert (changed.json()['scheduler_weight'], changed.json()['rpm_limit']) == (2, 30)

    for body, param in (({'scheduler_weight': 0}, 'scheduler_weight'), ({'scheduler_weight': -3}, 'scheduler_weight'),
                        ({'token_budget': -1}, 'token_budget'), ({'max_concurrent': -1}, 'max_concurrent')):
        refused = await admin.patch('/api/admin/roles/student', json=body)
        assert refused.status_code == 400 and refused.json()['error']['param'] == param, refused.text
    unknown = await admin.patch('/api/admin/roles/wizard', json={'scheduler_weight': 5})
    assert unknown.status_code == 400 and 'faculty' in unknown.json()['error']['message']  # names the real ones

    roles = {role['name']: role for role in (await admin.get('/api/admin/roles')).json()}
    assert roles['student']['scheduler_weight'] == 2 and roles['admin']['scheduler_weight'] == 10


async def test_a_users_override_wins_over_its_role_and_null_gives_the_role_back(
        admin: httpx.AsyncClient, alice_key: str) -> None:
    set_ = await admin.put('/api/admin/users/alice/quota', json={'scheduler_weight': 5, 'token_budget': 1000,
                                                                'note': 'thesis deadline'})
    assert set_.status_code == 200, set_.text
    quota = set_.json()
    assert quota['effective']['scheduler_weight'] == 5 and quota['effective']['token_budget'] == 1000
    assert quota['effective']['rpm_limit'] == quota['role_limits']['rpm_limit'] == 60  # the student role's
    assert quota['note'] == 'thesis deadline' and quota['used_tokens'] == 0

    cleared = (await admin.put('/api/admin/users/alice/quota', json={})).json()
    assert cleared['effective'] == cleared['role_limits'] and cleared['overrides']['token_budget'] is None
    assert (await admin.put('/api/admin/users/alice/quota', json={'scheduler_weight': 0})).status_code == 400
    assert (await admin.get('/api/admin/users/nobody/quota')).status_code == 404


async def test_a_user_asks_for_more_and_an_admin_approves_or_denies(admin: httpx.AsyncClient,
                                                                    alice_key: str) -> None:
    alice = {'X-API-Key': alice_key}
    filed = await admin.post('/api/account/quota-requests', headers=alice, json={
        'requested_tokens': 5_000_000, 'justification': 'fine-tuning experiments for my thesis'})
    assert filed.status_code == 201, filed.text
    again = await admin.post('/api/account/quota-requests', headers=alice, json={
        'requested_rpm': 100, 'justification': 'and more requests per minute please'})
    assert again.status_code == 400 and 'pending' in again.json()['error']['message']
    vague = await admin.post('/api/account/quota-requests', headers=alice, json={'justification': 'need more!!'})
    assert vague.status_code == 400

    pending = (await admin.get('/api/admin/quota-requests', params={'status': 'pending'})).json()
    assert [r['id'] for r in pending] == [filed.json()['id']]
    approved = await admin.post(f'/api/admin/quota-requests/{filed.json()["id"]}/approve',
                                json={'note': 'granted for the semester'})
    assert approved.json()['status'] == 'approved'
    quota = (await admin.get('/api/admin/users/alice/quota')).json()
    assert quota['effective']['token_budget'] == 5_000_000
    twice = await admin.post(f'/api/admin/quota-requests/{filed.json()["id"]}/deny', json={})
    assert twice.status_code == 400 and 'already approved' in twice.json()['error']['message']

    second = (await admin.post('/api/account/quota-requests', headers=alice, json={
        'requested_max_concurrent': 50, 'justification': 'a batch job over the weekend'})).json()
    denied = await admin.post(f'/api/admin/quota-requests/{second["id"]}/deny', json={'note': 'use the queue'})
    assert denied.json()['status'] == 'denied'
    mine = (await admin.get('/api/account/quota-requests', headers=alice)).json()
    assert [(r['status'], r['review_note']) for r in mine] == [('denied', 'use the queue'),
                                                               ('approved', 'granted for the semester')]
    assert (await admin.get('/api/admin/users/alice/quota')).json()['effective']['max_concurrent'] == 4


async def test_a_user_sees_its_own_limits_and_usage(client: httpx.AsyncClient, alice_key: str) -> None:
    usage = await client.get('/api/account/usage', headers={'X-API-Key': alice_key})
    assert usage.status_code == 200
    body = usage.json()
    assert body['role'] == 'student' and body['limits']['token_budget'] == 2_000_000
    assert body['used_tokens'] == 0 and body['period'] == 'month' and body['running'] == 0


@pytest.mark.parametrize('path', ['/api/admin/roles', '/api/admin/quota-requests', '/api/admin/users/alice/quota'])
async def test_limits_are_for_admins_only(client: httpx.AsyncClient, alice_key: str, path: str) -> None:
    response = await client.get(path, headers={'X-API-Key': alice_key})
    assert response.status_code == 403 and 'error' in response.json()  # OpenAI-style envelope, not Ollama's
