"""Admin API (placeholder: being built)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.deps import require_admin

router = APIRouter(prefix='/api/admin', tags=['Admin'], dependencies=[Depends(require_admin)])
