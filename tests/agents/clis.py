"""The coding agents' real command-line tools, from npm, pinned here (and only here), cached between runs.

    claude_code = install(CLAUDE_CODE)   # ~/.cache/mindrouter/agents/@anthropic-ai+claude-code@2.1.332/...

The first run downloads each package once (`npm install --prefix <cache>/<package>@<version>`); later runs
reuse the cache. `AgentUnavailable` says why a tool cannot be had (no npm, registry unreachable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str
    command: str  # the executable under node_modules/.bin


CLAUDE_CODE = Package('@anthropic-ai/claude-code', '2.1.332', 'claude')
OPENCODE = Package('opencode-ai', '1.18.33', 'opencode')
CODEX = Package('@openai/codex', '0.171.0', 'codex')

REPO = Path(__file__).resolve().parents[2]
_INSTALL_TIMEOUT_S = 600

# What keeps each CLI off the internet: no telemetry, error reports, update checks or other side traffic.
QUIET_ENV = {
    # Claude Code (https://code.claude.com/docs/en/settings#environment-variables)
    'DISABLE_TELEMETRY': '1', 'DISABLE_ERROR_REPORTING': '1', 'DISABLE_AUTOUPDATER': '1',
    'DISABLE_BUG_COMMAND': '1', 'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC': '1',
    # OpenCode (https://opencode.ai/docs/cli/#environment-variables)
    'OPENCODE_DISABLE_AUTOUPDATE': '1', 'OPENCODE_DISABLE_SHARE': '1', 'OPENCODE_DISABLE_LSP_DOWNLOAD': '1',
    'OPENCODE_DISABLE_DEFAULT_PLUGINS': '1', 'OPENCODE_DISABLE_MODELS_FETCH': '1',
    'OPENCODE_DISABLE_CLAUDE_CODE': '1',
}

# And should one still try: every proxy-honouring request that is not for the gateway on loopback goes to a
# closed port and fails at once, instead of leaving the machine.
OFFLINE_ENV = {'HTTPS_PROXY': 'http://127.0.0.1:9', 'HTTP_PROXY': 'http://127.0.0.1:9',
               'https_proxy': 'http://127.0.0.1:9', 'http_proxy': 'http://127.0.0.1:9',
               'NO_PROXY': '127.0.0.1,localhost', 'no_proxy': '127.0.0.1,localhost'}


class AgentUnavailable(Exception):
    """The CLI could not be installed; the message says why."""


def cache_root() -> Path:
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'mindrouter' / 'agents'


def install(package: Package) -> Path:
    """The package's executable, installed into the cache on first use."""
    prefix = cache_root() / f"{package.name.replace('/', '+')}@{package.version}"
    executable = prefix / 'node_modules' / '.bin' / package.command
    if executable.exists():
        return executable
    npm = shutil.which('npm')
    if npm is None:
        raise AgentUnavailable(f'npm is not installed, so {package.name} cannot be installed')
    prefix.mkdir(parents=True, exist_ok=True)
    # a package.json of its own, and npm run from inside: otherwise npm reads a folder named like the spec
    # (`opencode-ai@1.18.33`) in its working directory as a local package
    (prefix / 'package.json').write_text('{"private": true}\n')
    try:
        result = subprocess.run([npm, 'install', '--prefix', '.', '--no-audit', '--no-fund', '--no-save',
                                 f'{package.name}@{package.version}'], cwd=prefix, capture_output=True,
                                text=True, timeout=_INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise AgentUnavailable(f'npm install {package.name} timed out (is the npm registry reachable?)') from exc
    if result.returncode != 0 or not executable.exists():
        raise AgentUnavailable(f'npm install {package.name}@{package.version} failed (is the npm registry '
                               f'reachable?): {result.stderr.strip()[-800:]}')
    return executable


def installed_or_skip(package: Package) -> Path:
    """For a test: the executable, or the test skipped with the reason (failed under CI=true, which must run
    every agent)."""
    try:
        return install(package)
    except AgentUnavailable as exc:
        if os.environ.get('CI'):
            pytest.fail(f'{exc}; CI must run {package.name}')
        pytest.skip(str(exc))
