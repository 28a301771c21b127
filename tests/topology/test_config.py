"""The shipped nginx files as an operator installs them (the example site files included) pass `nginx -t`,
without starting anything: the files stay valid even where the topology itself cannot run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.topology.stack import SHIPPED, self_signed_certificate


def test_the_shipped_configuration_and_its_example_site_files_are_valid(tmp_path: Path) -> None:
    nginx = shutil.which('nginx') or ('/usr/sbin/nginx' if Path('/usr/sbin/nginx').exists() else '')
    if not nginx:
        if os.environ.get('CI'):
            pytest.fail('nginx is not installed; .ci/run installs it')
        pytest.skip('nginx is not installed (apt-get install nginx)')
    (tmp_path / 'mindrouter').symlink_to(SHIPPED / 'mindrouter', target_is_directory=True)
    shutil.copytree(SHIPPED / 'mindrouter-site', tmp_path / 'mindrouter-site')
    certificate, key = self_signed_certificate(tmp_path)
    https = tmp_path / 'mindrouter-site' / 'https.conf'
    https.write_text(
        https.read_text()
        .replace('/etc/ssl/mindrouter/fullchain.pem', str(certificate))
        .replace('/etc/ssl/mindrouter/privkey.pem', str(key))
    )  # the only lines an operator must edit
    (tmp_path / 'nginx.conf').write_text(
        f'pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n'
        f'    include {SHIPPED / "mindrouter.conf"};\n    include {SHIPPED / "sidecar-proxy.conf"};\n}}\n'
    )
    result = subprocess.run(
        [nginx, '-t', '-c', str(tmp_path / 'nginx.conf'), '-p', str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
