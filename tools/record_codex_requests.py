"""Record what the pinned Codex CLI sends, as golden fixtures: `python tools/record_codex_requests.py`.

Runs `codex exec` (tests/e2e/codex_cli.py: the pinned release, agentic_ai/codex/config.toml as shipped, no way
out to the internet) against a recording server on 127.0.0.1 that asks for Codex's own shell tool once, then
writes each request Codex sent to tests/fixtures/agents/codex/: `turn.json` (the first request of a turn) and
`tool_result.json` (the request carrying the tool's result). Machine-specific paths are replaced by `<WORKDIR>`
and `<CODEX_ROOT>`. tests/unit/translate/test_codex_fixtures.py parses and translates them; rerun this after
changing CODEX_VERSION, and review the diff: a changed request shape shows there first.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.codex_cli import CODEX_VERSION, Codex, RecordingServer, codex_home, install_codex

FIXTURES = Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'agents' / 'codex'


def main() -> None:
    with tempfile.TemporaryDirectory(prefix='codex-record-', dir=Path.home()) as tmp:
        root = Path(tmp)
        workdir = root / 'work'
        workdir.mkdir()
        (workdir / 'marker.txt').write_text('the marker is 42\n')
        codex = Codex(install_codex(), codex_home(root))
        recorder = RecordingServer(tool='exec_command', arguments={'cmd': 'cat marker.txt'})
        with recorder.serving() as base_url:
            run = codex.run(workdir, 'Read marker.txt and tell me what it says.', base_url=base_url,
                            model='llama3.2', api_key='recording')
        codex.trap.close()
        if run.returncode != 0 or len(recorder.requests) != 2 or codex.trap.attempts:
            sys.exit(f'recording failed: rc={run.returncode}, {len(recorder.requests)} requests, '
                     f'proxy attempts {codex.trap.attempts}\n{run.stderr[-2000:]}')
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for name, request in zip(('turn', 'tool_result'), recorder.requests, strict=True):
            text = json.dumps({'codex_version': CODEX_VERSION, **request}, indent=1, ensure_ascii=False)
            text = text.replace(str(workdir), '<WORKDIR>').replace(str(root), '<CODEX_ROOT>')
            (FIXTURES / f'{name}.json').write_text(text + '\n')
    print(f'wrote {FIXTURES}/turn.json and tool_result.json (Codex {CODEX_VERSION})')


if __name__ == '__main__':
    main()
