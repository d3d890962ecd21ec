"""docker-compose.yml is accepted by Compose with the documented .env."""

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose_command():
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError("neither `docker compose` nor `docker-compose` is installed (.ci/run installs it)")


def test_compose_file_is_valid_with_the_example_env(tmp_path):
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run([*compose_command(), "config"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"postgres", "redis", "minio", "web", "worker", "beat", "flower"} <= set(services)
    for name in ("postgres", "redis", "minio", "web", "worker", "flower"):
        assert "healthcheck" in services[name], name
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert services["worker"]["environment"]["DATABASE_URL"].startswith("postgres://")
    assert {"postgres-data", "redis-data", "minio-data"} <= set(config["volumes"])


def test_compose_refuses_to_start_without_secrets(tmp_path):
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    result = subprocess.run([*compose_command(), "config"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "set " in result.stderr
