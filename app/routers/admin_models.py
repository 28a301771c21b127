"""Admin API for models (/api/admin/models): the catalog as admins see it, and per-model settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from app.deps import require_admin
from app.responses import JSONResponse
from core.accounts.api_keys import Principal
from core.admin import model_catalog as model_admin
from core.admin.cluster_actions import Actor
from core.admin.model_catalog import ModelChanges
from core.config import Settings
from core.db import Database
from core.errors import NotFound
from core.registry.monitor import RegistryMonitor
from core.registry.view import RegistryView

router = APIRouter(prefix='/api/admin/models', tags=['Admin'], dependencies=[Depends(require_admin)])
Admin = Annotated[Principal, Depends(require_admin)]


class ModelSettingsPatch(ModelChanges):
    """Only the fields sent change."""


@router.get('')
async def list_models(request: Request) -> JSONResponse:
    """Every model any backend lists, with where it runs and the context length requests get."""
    return JSONResponse([_model(request, name) for name in sorted({
        name for backend in _view(request).backends for name in backend.models})])


@router.patch('/{model:path}')
async def update_model(model: str, payload: ModelSettingsPatch, request: Request, admin: Admin) -> JSONResponse:
    """Set or clear the context length every request to this model gets (Ollama's num_ctx), and the
    capabilities requests are routed by (replacing the discovered ones; null: discovered again). The model is
    named as inference names it: `llama3.2` is `llama3.2:latest`."""
    database: Database = request.app.state.database
    monitor: RegistryMonitor = request.app.state.monitor
    model = _view(request).resolve(model) or model  # an unknown name: the service says 404
    async with database.session() as session:
        await model_admin.change_settings(session, actor=Actor(id=admin.user_id, name=admin.username, via='api'),
                                          model=model, changes=payload)
    await monitor.reload()
    return JSONResponse(_model(request, model))


def _model(request: Request, name: str) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    served = [(backend, backend.models[name]) for backend in _view(request).backends if name in backend.models]
    if not served:
        raise NotFound(f"no backend serves a model named '{name}'", param='model')
    info = served[0][1]
    return {
        'name': name,
        'capabilities': sorted(info.capabilities),
        'context_length_max': max((i.context_length for _, i in served if i.context_length), default=None),
        'context_length_override': info.context_override,
        'context_length': info.effective_context(settings.context_length_cap),
        'backends': [{'id': b.id, 'name': b.name, 'engine': b.engine, 'healthy': b.healthy} for b, _ in served],
    }


def _view(request: Request) -> RegistryView:
    view: RegistryView = request.app.state.registry
    return view
