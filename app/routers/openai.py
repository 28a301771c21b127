"""OpenAI-compatible surface (/v1). The gateway issue fills in chat, completions and embeddings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import Caller
from app.responses import JSONResponse

router = APIRouter(prefix='/v1', tags=['OpenAI'])


@router.get('/models', response_class=JSONResponse)
async def list_models(caller: Caller) -> JSONResponse:
    models: list[dict[str, Any]] = []  # the backend registry feeds this once backends exist
    return JSONResponse({'object': 'list', 'data': models})
