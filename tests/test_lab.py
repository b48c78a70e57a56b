"""`make lab` starts JupyterLab on notebooks/, with token auth, and it answers."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import pytest
from lab_server import make_lab


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_serves_the_notebooks_with_a_token(tmp_path):
    with make_lab(tmp_path) as lab:
        assert get(f"{lab.base}/api/contents")[0] == 403  # no token, no access
        status, body = get(f"{lab.base}/api/contents?token={lab.token}")
        names = {item["name"] for item in json.loads(body)["content"]}
        assert status == 200 and "00_setup.ipynb" in names
        assert get(f"{lab.base}/lab?token={lab.token}")[0] == 200
