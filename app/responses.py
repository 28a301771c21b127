"""A JSON response rendered by orjson: the gateway's hot paths build dicts, not Pydantic models."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = 'application/json'

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# On every streamed answer: a reverse proxy that buffers responses (nginx's default, some ingress controllers')
# would otherwise hold the tokens back until the answer ends. nginx honours X-Accel-Buffering whatever its config.
STREAM_HEADERS = {'X-Accel-Buffering': 'no', 'Cache-Control': 'no-cache'}
