"""Fidelity against the official JavaScript client (npm ``replicate``, pinned in tests/js/package-lock.json),
unchanged, against the simulator over HTTPS, trusted the documented way (``NODE_EXTRA_CA_CERTS``).

tests/js/client_check.mjs runs the client (run with FileOutput, create/wait/cancel, pinned versions,
paginate, files.create from a Buffer and a Blob, a Blob as an image input, stream, errors). ``.ci/run``
installs it with ``npm ci``; in CI a missing Node or package fails this test instead of skipping it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.server import serve_in_thread
from flux_batch.simulator.tls import make_tls

pytestmark = pytest.mark.slow
JS = Path(__file__).resolve().parent / "js"


def node() -> str:
    found = shutil.which("node")
    if found and (JS / "node_modules" / "replicate" / "package.json").is_file():
        return found
    reason = "needs Node and the npm package: run `npm ci` in tests/js (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_the_official_javascript_client(tmp_path: Path) -> None:
    executable = node()
    tls = make_tls(tmp_path)
    ca = tls.write_ca(tmp_path / "ca.pem")
    picture = io.BytesIO()
    Image.new("RGB", (640, 480), "red").save(picture, "PNG")
    app = create_app(SimConfig(latency=0.2, seed=3, create_rpm=0, other_rpm=0))
    with serve_in_thread(app, tls=tls) as base:
        with httpx.Client(base_url=base, verify=False, headers={"Authorization": "Bearer r8_js"}) as http:
            for i in range(205):  # more than two pages for paginate
                http.post(
                    "/v1/models/black-forest-labs/flux-schnell/predictions",
                    json={"input": {"prompt": f"{i}"}},
                )
        env = {
            **os.environ,
            "NODE_EXTRA_CA_CERTS": str(ca),
            "PNG_BASE64": base64.b64encode(picture.getvalue()).decode(),
        }
        result = subprocess.run(
            [executable, str(JS / "client_check.mjs"), base],
            cwd=JS,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["paginate"]["pages"] >= 3 and seen["paginate"]["predictions"] >= 205
    assert seen["kontext"] == {"width": 640, "height": 480}
    assert seen["stream"][-2:] == ["output", "done"]
    assert seen["run"]["single"].startswith("https://")
    uploads = app.stats()["requests"]["POST /v1/files"]
    assert uploads == {"201": 3}  # a Buffer, a Blob with metadata, and the Blob input
