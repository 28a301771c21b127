"""Whole-server power from the BMC via `ipmitool dcmi power reading`.

Optional by design: many nodes have no ipmitool, no /dev/ipmi0 inside the container, or a BMC without DCMI. Every
failure becomes `{"error": ...}` (the gateway then falls back to the sum of GPU power); nothing here raises, and
the 5 s timeout bounds how long a wedged BMC can delay /gpu-info.
"""

from __future__ import annotations

import re
import shutil
import subprocess

TIMEOUT_S = 5.0

# ipmitool's labels -> wire names. Matched on the start of the label, case-insensitively, because the exact
# wording varies a little between ipmitool versions ("Average power reading over sample period").
_LABELS = (
    ('instantaneous power reading', 'instantaneous_watts'),
    ('minimum during sampling period', 'minimum_watts'),
    ('maximum during sampling period', 'maximum_watts'),
    ('average power reading', 'average_watts'),
)
_LINE = re.compile(r'^\s*([^:]+?)\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*Watts', re.IGNORECASE)

Json = dict[str, object]


def parse_power_reading(output: str) -> Json:
    """The watts figures of `ipmitool dcmi power reading`, or {"error"} when none is there."""
    found: Json = {}
    for line in output.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        label = match.group(1).lower()
        for prefix, key in _LABELS:
            if label.startswith(prefix):
                found[key] = float(match.group(2))
    if 'instantaneous_watts' not in found:
        return {'error': 'no power reading in ipmitool output'}
    return found


def read_server_power() -> Json:
    ipmitool = shutil.which('ipmitool')
    if ipmitool is None:
        return {'error': 'ipmitool not available'}
    try:
        done = subprocess.run(
            [ipmitool, 'dcmi', 'power', 'reading'],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {'error': f'ipmitool timed out after {TIMEOUT_S:g} s'}
    except OSError as e:
        return {'error': f'ipmitool failed: {e}'}
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return {'error': f'ipmitool exited {done.returncode}' + (f': {detail[0]}' if detail else '')}
    return parse_power_reading(done.stdout)
