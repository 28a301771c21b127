"""All tables, imported here so `SQLModel.metadata` (and Alembic) sees every one of them."""

from core.models.accounts import (
    ApiKey,
    ApiKeyPublic,
    ApiKeyStatus,
    Role,
    RoleName,
    RolePublic,
    User,
    UserPublic,
)
from core.models.admin_log import AdminAction
from core.models.audit import RequestLog
from core.models.backends import Backend, BackendBase, BackendModel, BackendStatus, BackendUpdate, Engine
from core.models.base import utcnow
from core.models.chat import AttachmentKind, ChatAttachment, ChatMessage, ChatRole, Conversation
from core.models.leases import JobLease, RetentionMark
from core.models.model_aliases import ModelAlias
from core.models.model_settings import ModelSetting
from core.models.nodes import Node, NodeBase, NodeStatus
from core.models.quotas import QuotaOverride, QuotaRequest, QuotaRequestStatus
from core.models.responses import StoredResponse
from core.models.site_settings import SiteSetting
from core.models.sso import ExternalIdentity, SsoProvider
from core.models.telemetry import BackendSample, GpuSample

__all__ = [
    'AdminAction',
    'ApiKey',
    'ApiKeyPublic',
    'ApiKeyStatus',
    'AttachmentKind',
    'Backend',
    'BackendBase',
    'BackendModel',
    'BackendSample',
    'BackendStatus',
    'BackendUpdate',
    'ChatAttachment',
    'ChatMessage',
    'ChatRole',
    'Conversation',
    'Engine',
    'ExternalIdentity',
    'GpuSample',
    'JobLease',
    'ModelAlias',
    'ModelSetting',
    'Node',
    'NodeBase',
    'NodeStatus',
    'QuotaOverride',
    'QuotaRequest',
    'QuotaRequestStatus',
    'RequestLog',
    'RetentionMark',
    'Role',
    'RoleName',
    'RolePublic',
    'SiteSetting',
    'SsoProvider',
    'StoredResponse',
    'User',
    'UserPublic',
    'utcnow',
]
