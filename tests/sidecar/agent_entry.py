"""Test entry point: the real agent process (env, key check, uvicorn) over the fake NVML of tests/sidecar/fakes.py.

Run from the repository root as `python -m tests.sidecar.agent_entry`. The production entry point has no such
switch: the fake is injected through `main(nvml_api=...)`, so nothing test-only ships with the sidecar.
"""

import sys

from sidecar.gpu_agent import main
from tests.sidecar.fakes import FakeNvml

if __name__ == '__main__':
    sys.exit(main(nvml_api=FakeNvml()))
