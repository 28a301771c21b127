"""Who may call what: the declared access policy the authorization matrix (matrix.py) holds every route and page to.

This file is the decision, written once per path prefix; the routes themselves come from the application at run
time. A route or page that no rule covers fails the matrix, so a new surface cannot ship without someone deciding
here who may use it; one that is covered but answers differently (a forgotten guard) fails too.

The rule that applies is the most specific: an exact path before any prefix, a longer prefix before a shorter one;
a rule with `methods` before one without at the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Access(StrEnum):
    # API routes (an API key in `Authorization: Bearer` or `X-API-Key`)
    public = 'public'  # anyone, no key
    key = 'key'  # any valid key; none: 401
    own = 'own'  # any valid key, and only the key owner's own resources (the path's id): anyone else's is a 404
    self_only = 'self_only'  # any valid key; answers about the caller only (no id in the path)
    admin = 'admin'  # an admin's key; none: 401, anyone else's: 403
    unknown = 'unknown'  # the dialect's catch-all for unknown paths: 404 for everyone, before any key check
    not_allowed = 'not_allowed'  # a method the route refuses for everyone (405), before any key check
    # console pages (a signed-in browser session)
    page_public = 'page_public'  # anyone
    page_session = 'page_session'  # signed in; anonymous: redirected to /login
    page_own = 'page_own'  # signed in, and only the owner's own object (the path's id) is shown
    page_admin = 'page_admin'  # an admin's session; anonymous: redirected to /login, anyone else: 403


@dataclass(frozen=True, slots=True)
class Rule:
    path: str  # a route's path template; ends with '*' for a prefix
    access: Access
    why: str
    methods: frozenset[str] | None = None

    def matches(self, path: str, method: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.path.endswith('*'):
            return path.startswith(self.path[:-1])
        return path == self.path

    @property
    def specificity(self) -> tuple[int, int, int]:
        return (not self.path.endswith('*'), len(self.path), self.methods is not None)


API_RULES = (
    # probes and public figures
    Rule('/healthz', Access.public, 'liveness probe for load balancers'),
    Rule('/readyz', Access.public, 'readiness probe; details only for admins and loopback (security.md)'),
    Rule('/metrics', Access.public, 'Prometheus scrapes without a key; no per-user figures'),
    Rule('/status', Access.public, "the public status page's figures"),
    Rule('/api/cluster/*', Access.public, 'public cluster figures (total tokens, trends, throughput)'),
    Rule('/openapi.json', Access.public, 'the API description'),
    Rule('/docs*', Access.public, 'Swagger UI'),
    Rule('/redoc', Access.public, 'ReDoc'),
    # the three dialects: any valid key
    Rule('/v1/*', Access.key, 'OpenAI API'),
    Rule('/v1/responses/*', Access.own, "a stored response is its creator's only (other users: 404, not 403)"),
    Rule('/v1/audio/*', Access.key, 'speech and transcription: inference like the rest of /v1'),
    Rule('/api/*', Access.key, 'Ollama API'),
    Rule('/anthropic/*', Access.key, 'Anthropic API'),
    Rule('/mcp', Access.key, 'the MCP server: tools over the same keys', methods=frozenset({'POST'})),
    Rule(
        '/mcp',
        Access.not_allowed,
        'stateless MCP: JSON-RPC by POST only',
        methods=frozenset({'GET', 'PUT', 'PATCH', 'DELETE'}),
    ),
    # catch-alls answering unknown paths in the dialect (app/routers/fallback.py)
    Rule('/v1/{path:path}', Access.unknown, 'unknown OpenAI endpoint'),
    Rule('/api/{path:path}', Access.unknown, 'unknown Ollama endpoint'),
    Rule('/anthropic/{path:path}', Access.unknown, 'unknown Anthropic endpoint'),
    # a user's own account, and the administrators' API
    Rule('/api/account/*', Access.self_only, "the caller's own usage and quota requests"),
    Rule('/api/admin/*', Access.admin, 'the admin API'),
    # single sign-on: the browser arrives there before it has any session or key
    Rule('/auth/*', Access.public, 'SSO login redirect and identity-provider callback'),
)

PAGE_RULES = (
    Rule('/', Access.page_public, 'public home: cluster status'),
    Rule('/models', Access.page_public, 'public model list'),
    Rule('/login', Access.page_public, 'sign-in form'),
    Rule('/logout', Access.page_public, 'signing out needs no session'),
    Rule('/session/start', Access.page_public, 'sign-in handover: the one-time ticket is the credential'),
    Rule('/auth/*', Access.page_public, 'SSO login redirect and identity-provider callback'),
    Rule('/favicon.ico', Access.page_public, 'the icon'),
    Rule('/_nicegui*', Access.page_public, "NiceGUI's own assets and websocket: no user data"),
    Rule('/dashboard', Access.page_session, "a user's usage, keys and quota requests"),
    Rule('/chat', Access.page_session, 'the chat'),
    Rule('/chat/speech/{token}', Access.page_session, "a read-aloud's audio: signed in, and the one-time token (bound "
         "to its user's key) names it"),
    Rule('/chat/{conversation_id}', Access.page_own, "a conversation is its owner's only"),
    Rule('/admin', Access.page_admin, 'admin console'),
    Rule('/admin/*', Access.page_admin, 'admin console'),
)


def rule_for(rules: tuple[Rule, ...], path: str, method: str) -> Rule | None:
    """The most specific rule covering `method path`, or None: no decision has been made for it."""
    matching = [rule for rule in rules if rule.matches(path, method)]
    return max(matching, key=lambda rule: rule.specificity, default=None)
