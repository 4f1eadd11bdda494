"""`BACKEND_WORKERS=2`: `python -m backend` runs two worker processes whose metrics meet in
one multiprocess folder, so every scrape, whichever worker answers it, counts every call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from backend.launch import ROOT, free_port, stop, wait_until_up
from tests.backend.helpers import backend_env


def healthz_count(url: str) -> float:
    # A new connection each time: the kernel hands it to either worker.
    text = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (s.name == "kryptos_backend_requests_total"
                    and s.labels.get("endpoint") == "/healthz"):
                return s.value
    return 0.0


def test_two_workers_share_their_metrics(tmp_path: Path, sandbox):
    port = free_port()
    env = backend_env(tmp_path, sandbox.base_url, BACKEND_WORKERS="2",
                      PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    (tmp_path / "prom").mkdir()
    child = subprocess.Popen([sys.executable, "-m", "backend", "--port", str(port)],
                             cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/healthz", child)
        start = healthz_count(url)
        for _ in range(20):
            requests.get(url + "/healthz", timeout=10, headers={"Connection": "close"})
        counts = {healthz_count(url) - start for _ in range(6)}
        assert counts == {20.0}
        # Both workers wrote their counters to the shared folder.
        assert len([p for p in (tmp_path / "prom").iterdir() if p.name.startswith("counter")]) >= 2
    finally:
        stop([child])
