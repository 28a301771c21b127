"""The authorization matrix: every route of an application, called as every kind of caller, each answer held to
what the declared policy (policy.py) says that caller should get.

Nothing here lists routes: they are read from the application (FastAPI's route table, NiceGUI's), so a route
added tomorrow is probed tomorrow. What a caller should get follows from the rule covering the route, never from
the route's own code, so a guard that was forgotten shows up as a caller getting in.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx
import orjson
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from tests.hostile.policy import Access, Rule, rule_for

ANONYMOUS, OWNER, OTHER, ADMIN = 'anonymous', 'owner', 'other user', 'admin'
IDENTITIES = (ANONYMOUS, OWNER, OTHER, ADMIN)  # OWNER and OTHER are students; OWNER owns the resources probed
PLACEHOLDER = '999999'  # a path parameter that names nothing (valid as an int and as a string)
_PARAM = re.compile(r'{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?}')
_BODY_METHODS = frozenset({'POST', 'PUT', 'PATCH'})


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # the route's template, e.g. /v1/responses/{response_id}


@dataclass(slots=True)
class Violations:
    found: list[str] = field(default_factory=list)

    def add(self, endpoint: Endpoint, identity: str, problem: str) -> None:
        self.found.append(f'{endpoint.method} {endpoint.path} as {identity}: {problem}')

    def report(self) -> str:
        return '\n'.join(self.found)


def endpoints(routes: Iterable[BaseRoute]) -> list[Endpoint]:
    """Every method of every HTTP route (HEAD is GET's), and a GET into every mounted application (which answers
    paths of its own below its mount point). Websocket routes speak another protocol and are left out."""
    found: set[Endpoint] = set()
    for context in iter_route_contexts(list(routes)):  # included routers flattened, with their prefixes
        route = context.original_route
        if isinstance(route, WebSocketRoute):
            continue
        if isinstance(route, Mount):
            found.add(Endpoint('GET', f'{route.path}/{{path:path}}'))
            continue
        if not isinstance(route, Route) or context.path is None:
            raise AssertionError(f'a route of a kind the matrix does not know: {route!r}')
        found.update(Endpoint(method, context.path) for method in (context.methods or {'GET'}) - {'HEAD'})
    # DELETE last, so a probe that removes a resource runs after the others have read it
    return sorted(found, key=lambda e: (e.method == 'DELETE', e.path, e.method))


def path_params(template: str) -> list[str]:
    return _PARAM.findall(template)


def dialect_of(path: str) -> str:
    """The error envelope a path's callers are promised (docs/api.md, 'Errors speak the caller's dialect')."""
    if path == '/mcp':
        return 'jsonrpc'
    if path.startswith(('/anthropic/', '/v1/messages/')) or path == '/v1/messages':
        return 'anthropic'
    if path.startswith('/api/') and not path.startswith(('/api/admin/', '/api/account/')):
        return 'ollama'
    return 'openai'


def envelope_problem(path: str, response: httpx.Response) -> str | None:
    """What is wrong with an error answer's body for the path's dialect, or None."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return f'error body is not JSON: {response.text[:120]!r}'
    dialect = dialect_of(path)
    error = body.get('error') if isinstance(body, dict) else None
    if dialect == 'openai':
        ok = (
            isinstance(error, dict)
            and isinstance(error.get('message'), str)
            and isinstance(error.get('type'), str)
            and {'message', 'type', 'param', 'code'} <= error.keys()
        )
    elif dialect == 'anthropic':
        ok = (
            body.get('type') == 'error'
            and isinstance(error, dict)
            and isinstance(error.get('type'), str)
            and isinstance(error.get('message'), str)
        )
    elif dialect == 'ollama':
        ok = isinstance(error, str) and bool(error)
    else:
        ok = body.get('jsonrpc') == '2.0' and isinstance(error, dict) and isinstance(error.get('code'), int)
    return None if ok else f'not a {dialect} error envelope: {response.text[:200]}'


Caller = Callable[[str, Endpoint, str], Awaitable[httpx.Response]]  # (identity, endpoint, concrete path)
ResourceOf = Callable[[str], Awaitable[str]]  # path parameter name -> a fresh resource of OWNER's


async def check_api(
    endpoints_: list[Endpoint], rules: tuple[Rule, ...], call: Caller, owned: ResourceOf, owner_name: str
) -> Violations:
    """Probe every endpoint as every identity and collect every departure from the policy."""
    violations = Violations()
    for endpoint in endpoints_:
        rule = rule_for(rules, endpoint.path, endpoint.method)
        if rule is None:
            violations.add(
                endpoint,
                'anyone',
                'no policy rule covers this route: decide who may call it in tests/hostile/policy.py',
            )
            continue
        for identity in IDENTITIES:
            path = endpoint.path
            for name in path_params(endpoint.path):
                value = await owned(name) if rule.access is Access.own else PLACEHOLDER
                path = re.sub(r'{' + name + r'(?::[a-z]+)?}', value, path)
            response = await call(identity, endpoint, path)
            problem = _api_problem(rule, identity, response, owner_name)
            if problem is None and response.status_code >= 400 and rule.access is not Access.public:
                problem = envelope_problem(endpoint.path, response)
            if problem is not None:
                violations.add(endpoint, identity, f'{problem} (policy: {rule.access}, {rule.why})')
    return violations


def _api_problem(rule: Rule, identity: str, response: httpx.Response, owner_name: str) -> str | None:
    status = response.status_code
    if status >= 500:
        return f'server error {status}: {response.text[:200]}'
    access = rule.access
    expected: int | None = None  # a refusal this caller must get
    if access is Access.unknown:
        expected = 404
    elif access is Access.not_allowed:
        expected = 405
    elif identity == ANONYMOUS and access is not Access.public:
        expected = 401
    elif access is Access.admin and identity != ADMIN:
        expected = 403
    elif access is Access.own and identity != OWNER:
        expected = 404  # another's resource reads like one that does not exist: ids cannot be probed
    if expected is not None:
        return None if status == expected else f'got {status}, expected {expected}'
    if status in (401, 403):
        return f'refused with {status}: {response.text[:200]}'
    if access is Access.own and not 200 <= status < 300:
        return f'its owner got {status}, expected its resource: {response.text[:200]}'
    if access is Access.self_only and identity != OWNER and owner_name in response.text:
        return f'answer names another user ({owner_name}): {response.text[:200]}'
    return None


# Console pages: the gate answers a signed-out browser with a redirect to the login page, a non-admin with 403.


def page_problem(rule: Rule, identity: str, response: httpx.Response, owner_secret: str) -> str | None:
    status = response.status_code
    if status >= 500:
        return f'server error {status}'
    to_login = status in (302, 303, 307) and response.headers.get('location', '').startswith('/login?redirect_to=')
    access = rule.access
    if access is Access.page_public:
        return 'sent to the login page' if to_login else ('refused with 403' if status == 403 else None)
    if identity == ANONYMOUS:
        return None if to_login else f'got {status}, expected a redirect to /login?redirect_to=...'
    if access is Access.page_admin and identity != ADMIN:
        return None if status == 403 else f'got {status}, expected 403'
    if status == 403 or to_login:  # let in: what it then answers (404 for an id that names nothing) is its own
        return f'refused with {status}, expected the page'
    if access is Access.page_own:
        shown = owner_secret in response.text
        if identity == OWNER and not shown:
            return 'its owner does not see it'
        if identity != OWNER and shown:
            return "shows another user's object"
    return None


def fill(template: str, value: str) -> str:
    return _PARAM.sub(value, template)


def body_for(method: str) -> bytes | None:
    """Requests that carry a body get an empty JSON object: enough to reach the guard, never enough to act."""
    return b'{}' if method in _BODY_METHODS else None
