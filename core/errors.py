"""Domain errors. The HTTP layer renders them in the caller's API dialect; the CLI prints their message.

    MindRouterError                  any error the product expects and explains
    ├── ConfigError                  settings that cannot work (start-up stops)
    ├── DatabaseUnavailable          the database cannot be reached
    ├── InvalidRequest               400: bad input, names the parameter
    │   ├── UnknownRole
    │   ├── DuplicateUser
    │   └── RequestTooLarge          413
    ├── AuthenticationFailed         401: missing, invalid, revoked or expired API key
    ├── PermissionDenied             403: authenticated, but not allowed
    ├── NotFound                     404
    │   ├── UserNotFound
    │   ├── ApiKeyNotFound
    │   └── ModelNotFound
    ├── BackendUnavailable           503: no backend can take the request
    └── UpstreamError                the engine's own error: 4xx passed on, anything else 502
"""

from __future__ import annotations


class MindRouterError(Exception):
    status_code = 500
    error_type = 'server_error'  # OpenAI's `type`; the other dialects map from it
    code: str | None = None
    retry_after: float | None = None  # seconds: sent as Retry-After when set

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ConfigError(MindRouterError):
    pass


class DatabaseUnavailable(MindRouterError):
    status_code = 503
    code = 'database_unavailable'


class InvalidRequest(MindRouterError):
    status_code = 400
    error_type = 'invalid_request_error'


class UnknownRole(InvalidRequest):
    code = 'unknown_role'


class DuplicateUser(InvalidRequest):
    code = 'duplicate_user'


class AuthenticationFailed(MindRouterError):
    status_code = 401
    error_type = 'authentication_error'
    code = 'invalid_api_key'


class PermissionDenied(MindRouterError):
    status_code = 403
    error_type = 'permission_error'
    code = 'permission_denied'


class NotFound(MindRouterError):
    status_code = 404
    error_type = 'not_found_error'
    code = 'not_found'


class Conflict(MindRouterError):
    status_code = 409
    error_type = 'invalid_request_error'
    code = 'conflict'


class UserNotFound(NotFound):
    code = 'user_not_found'


class ApiKeyNotFound(NotFound):
    code = 'api_key_not_found'


class ModelNotFound(NotFound):
    code = 'model_not_found'


class RequestTooLarge(InvalidRequest):
    status_code = 413
    code = 'request_too_large'


class BackendUnavailable(MindRouterError):
    """No backend can take the request now (none healthy, all full past the queue timeout, all failed)."""

    status_code = 503
    error_type = 'server_error'
    code = 'backend_unavailable'

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LimitExceeded(MindRouterError):
    """The caller's own limits stop this request: requests per minute, running requests, token budget."""

    status_code = 429
    error_type = 'rate_limit_error'

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class UpstreamError(MindRouterError):
    """The engine answered with an error; `status_code` is what the client gets (4xx passed on, else 502)."""

    error_type = 'server_error'
    code = 'upstream_error'

    def __init__(self, message: str, *, status_code: int = 502, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status_code = status_code
        if 400 <= status_code < 500:
            self.error_type = 'invalid_request_error'
