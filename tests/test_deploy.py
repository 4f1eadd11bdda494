"""compose.yaml and the Dockerfile run what tests/e2e/test_replicas.py runs.

No container runtime runs here, so the files are read, not run: the YAML is parsed and each
service's command, settings and the nginx configuration it mounts are compared with the
commands, settings and template the replica test launches (tests/e2e/replicas.py), with
the container's addresses in place of 127.0.0.1 and its free ports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.e2e.console_process import PROJECT_ROOT, console_command
from tests.e2e.replicas import (
    PLACES,
    SECRETS,
    SHARED,
    TEMPLATE,
    Stack,
    backend_command,
    fill_template,
    sandbox_command,
    template_names,
)

COMPOSE = PROJECT_ROOT / "compose.yaml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
CONSOLE_PORT, BACKEND_PORT, SANDBOX_PORT = 8501, 8000, 8765
CONSOLES, BACKENDS = ("console-1", "console-2"), ("backend-1", "backend-2")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _launched_env_names() -> set[str]:
    """The settings the replica test gives every console and backend process."""
    stack = Stack(root=Path("/nowhere"), admin_url="", db_url="",
                  secrets={name: "x" for name in SECRETS})
    return set(stack.env(Path("/data")))


def test_the_replicas_are_started_with_the_commands_the_test_launches(services) -> None:
    for name in CONSOLES:
        assert services[name]["command"] == console_command("python", "0.0.0.0", CONSOLE_PORT)
    for name in BACKENDS:
        assert services[name]["command"] == backend_command("python", "0.0.0.0", BACKEND_PORT,
                                                            "*")
    webhook_url = f"http://nginx:{BACKEND_PORT}/api/kryptos/webhooks"
    assert services["sandbox"]["command"] == sandbox_command(
        "python", "0.0.0.0", SANDBOX_PORT, webhook_url, "${KRYPTOS_WEBHOOK_SECRET:?set in .env}")


def test_every_replica_gets_the_settings_the_test_gives_it(services) -> None:
    names = _launched_env_names()
    assert names == set(SHARED) | set(SECRETS) | set(PLACES)
    for name in (*CONSOLES, *BACKENDS):
        env = services[name]["environment"]
        assert set(env) == names, name
        assert {k: env[k] for k in SHARED} == SHARED, name
        # Secrets come from .env, never written into the file.
        for secret in SECRETS:
            assert env[secret] == f"${{{secret}:?set in .env}}", (name, secret)
        assert env["SANDBOX_URL"] == f"http://sandbox:{SANDBOX_PORT}"
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://console:${POSTGRES_PASSWORD")
        assert env["DATABASE_URL"].endswith("@postgres:5432/console")
    # One users file for every console (a login stamped on one is valid on the other), a
    # data folder of its own for each replica.
    volumes = {name: services[name]["volumes"] for name in (*CONSOLES, *BACKENDS)}
    users = f"users:{Path(services['console-1']['environment']['CONSOLE_AUTH_FILE']).parent}"
    assert all(users in volumes[name] for name in CONSOLES)
    data = [v for vols in volumes.values() for v in vols if v.endswith(":/data")]
    assert len(data) == len(set(data)) == 4


def test_nginx_runs_the_template_the_test_fills(services) -> None:
    nginx = services["nginx"]
    mounts = [v.split(":") for v in nginx["volumes"]]
    [(source, target, mode)] = mounts
    assert (PROJECT_ROOT / source).resolve() == TEMPLATE
    assert re.fullmatch(r"/etc/nginx/templates/\w+\.conf\.template", target) and mode == "ro"
    env = nginx["environment"]
    assert set(env) == template_names(TEMPLATE.read_text())
    assert [env["CONSOLE_1"], env["CONSOLE_2"]] == [f"{n}:{CONSOLE_PORT}" for n in CONSOLES]
    assert [env["BACKEND_1"], env["BACKEND_2"]] == [f"{n}:{BACKEND_PORT}" for n in BACKENDS]
    published = {p.split(":")[1] for p in nginx["ports"]}
    assert published == {env["CONSOLE_LISTEN"], env["BACKEND_LISTEN"]}
    # The sandbox's webhooks go through nginx's backend side, as in the test.
    assert f"nginx:{env['BACKEND_LISTEN']}/" in " ".join(services["sandbox"]["command"])
    filled = fill_template(TEMPLATE.read_text(), {k: str(v) for k, v in env.items()})
    assert "${" not in filled and "server console-1:8501" in filled
    assert set(nginx["depends_on"]) == {*CONSOLES, *BACKENDS}


def test_postgres_has_a_health_check_the_replicas_wait_for(services) -> None:
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in (*CONSOLES, *BACKENDS):
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
        port = CONSOLE_PORT if name in CONSOLES else BACKEND_PORT
        assert f"127.0.0.1:{port}/" in " ".join(services[name]["healthcheck"]["test"])


def test_the_image_is_debian_slim_python_311_with_the_pinned_requirements() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11[\w.-]*-slim-bookworm$", text, re.M)
    assert re.search(r"^RUN pip install -r requirements\.txt$", text, re.M)
    pins = [line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert all("==" in line for line in pins)
    [cmd] = re.findall(r"^CMD (\[.*\])$", text, re.M)
    assert json.loads(cmd) == console_command("python", "0.0.0.0", CONSOLE_PORT)
    assert re.search(r"^USER (?!root)\w+$", text, re.M)
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    assert {".streamlit/secrets.toml", ".env", "data"} <= set(ignored)
