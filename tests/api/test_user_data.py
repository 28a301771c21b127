"""An admin exports one user's stored content as a zip and erases it through the admin API; both are admin-logged,
and a user who is not an admin may do neither."""

from __future__ import annotations

import io
import json
import zipfile

import httpx

from core.config import get_settings
from core.db import Database
from tests.integration.test_retention import chat_of, rows_of, store_user_data


async def test_an_admin_exports_then_erases_a_users_content(admin: httpx.AsyncClient, database: Database) -> None:
    settings = get_settings()
    alice = await store_user_data(database, settings, 'alice', requests=2)
    bob = await store_user_data(database, settings, 'bob')

    exported = await admin.get('/api/admin/users/alice/export')
    assert exported.status_code == 200, exported.text
    assert exported.headers['content-type'] == 'application/zip'
    assert 'mindrouter-alice-' in exported.headers['content-disposition']
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        manifest = json.loads(archive.read('manifest.json'))
        requests = [json.loads(line) for line in archive.read('requests.jsonl').splitlines()]
        [conversation] = [json.loads(line) for line in archive.read('conversations.jsonl').splitlines()]
        [response] = [json.loads(line) for line in archive.read('responses.jsonl').splitlines()]
        stored_files = [name for name in archive.namelist() if name.startswith('files/')]
        original = next(name for name in stored_files if not name.endswith('.txt.txt') and name.endswith('.txt'))
        assert archive.read(original) == b'my secret notes'
    assert manifest['user']['username'] == 'alice' and manifest['exported_by'] == 'root'
    assert manifest['counts'] == {'requests': 2, 'conversations': 1, 'responses': 1, 'files': len(stored_files),
                                  'audio': 0}
    assert sorted(r['prompt'] for r in requests) == ['alice prompt 0', 'alice prompt 1']
    assert conversation['messages'][0]['content'] == 'alice asks something private'
    assert conversation['attachments'][0]['filename'] == 'notes.txt'
    assert response['id'] == 'resp_alice' and response['response'] == {'output': []}
    assert 'bob' not in exported.content.decode('latin-1')  # nothing of anyone else's

    erased = await admin.delete('/api/admin/users/alice/content')
    assert erased.status_code == 200, erased.text
    assert erased.json()['requests_blanked'] == 2 and erased.json()['conversations_deleted'] == 1
    assert all(r.prompt is None for r in await rows_of(database, alice.user_id))
    assert await chat_of(database, alice.user_id) == (0, 0, 0, 0)
    assert await chat_of(database, bob.user_id) == (1, 1, 1, 1)

    log = (await admin.get('/api/admin/log', params={'action': 'user.content'})).json()['rows']
    assert [(e['action'], e['target'], e['via']) for e in log] == [
        ('user.content.erase', 'alice', 'api'), ('user.content.export', 'alice', 'api')]
    assert (await admin.get('/api/admin/users/nobody/export')).status_code == 404


async def test_a_user_who_is_not_an_admin_may_neither_export_nor_erase(client: httpx.AsyncClient,
                                                                       alice_key: str) -> None:
    headers = {'X-API-Key': alice_key}
    assert (await client.get('/api/admin/users/alice/export', headers=headers)).status_code == 403
    assert (await client.delete('/api/admin/users/alice/content', headers=headers)).status_code == 403
