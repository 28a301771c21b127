"""Domain errors. The HTTP layer renders them in the caller's API dialect; the CLI prints their message.

    MindRouterError                  any error the product expects and explains
    ├── ConfigError                  settings that cannot work (start-up stops)
    ├── DatabaseUnavailable          the database cannot be reached
    ├── InvalidRequest               400: bad input, names the parameter
    │   ├── UnknownRole
    │   └── DuplicateUser
    ├── AuthenticationFailed         401: missing, invalid, revoked or expired API key
    ├── PermissionDenied             403: authenticated, but not allowed
    └── NotFound                     404
        ├── UserNotFound
        └── ApiKeyNotFound
"""

from __future__ import annotations


class MindRouterError(Exception):
    status_code = 500
    error_type = 'server_error'  # OpenAI's `type`; the other dialects map from it
    code: str | None = None

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


class UserNotFound(NotFound):
    code = 'user_not_found'


class ApiKeyNotFound(NotFound):
    code = 'api_key_not_found'
