"""After start-up the gateway takes what it built out of the cyclic collector's sight (gc.freeze), so that full
collections, which walked every module and SDK model, no longer pause requests (docs/performance.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi import FastAPI


@pytest.fixture
def app_env() -> Iterator[dict[str, str]]:
    yield {'GC_FREEZE': 'true'}
    gc.unfreeze()  # this test process builds many apps: give the collector back what one start-up froze


async def test_start_up_freezes_what_it_built(app: FastAPI) -> None:
    assert gc.get_freeze_count() > 10_000  # modules, routers, models: the long-lived heap


@pytest.mark.parametrize('app_env', [{'GC_FREEZE': 'false'}])
async def test_the_setting_turns_it_off(app: FastAPI) -> None:
    assert gc.get_freeze_count() == 0


@pytest.fixture
def restore_thresholds() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)


@pytest.mark.parametrize('app_env', [{'GC_GEN0_THRESHOLD': '10000'}])
async def test_young_collections_wait_for_ten_thousand_new_objects(restore_thresholds: None, app: FastAPI) -> None:
    assert gc.get_threshold()[0] == 10_000
