from __future__ import annotations

import re

from core.accounts.security import (
    API_KEY_PREFIX,
    api_key_digest,
    digests_match,
    generate_api_key,
    hash_password,
    verify_password,
)


def test_api_keys_are_random_256_bit_secrets_with_a_recognisable_prefix() -> None:
    keys = {generate_api_key().plaintext for _ in range(50)}

    assert len(keys) == 50
    for key in keys:
        assert key.startswith(API_KEY_PREFIX)
        secret = key.removeprefix(API_KEY_PREFIX)
        assert re.fullmatch(r'[A-Za-z0-9_-]{43}', secret)  # 32 bytes, base64url without padding


def test_a_new_key_carries_its_digest_and_display_prefix_but_never_shows_the_secret() -> None:
    key = generate_api_key()

    assert key.digest == api_key_digest(key.plaintext)
    assert re.fullmatch(r'[0-9a-f]{64}', key.digest)
    assert key.plaintext.startswith(key.prefix) and len(key.prefix) == len(API_KEY_PREFIX) + 8
    assert key.plaintext not in repr(key)


def test_digest_comparison() -> None:
    digest = api_key_digest('mr_example')
    assert digests_match(digest, api_key_digest('mr_example'))
    assert not digests_match(digest, api_key_digest('mr_other'))


def test_passwords_are_argon2id_and_verify_only_with_the_right_password() -> None:
    stored = hash_password('correct horse')

    assert stored.startswith('$argon2id$')
    assert 'correct horse' not in stored
    assert verify_password('correct horse', stored)
    assert not verify_password('wrong horse', stored)


def test_an_account_without_a_password_never_verifies() -> None:
    assert not verify_password('anything', None)
    assert not verify_password('anything', 'not-a-hash')
