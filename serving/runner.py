"""The serving worker's side: fetch the pinned checkpoint, start and stop model servers."""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from django.conf import settings

from portal.processes import die_with_parent
from serving import services
from serving.choices import DeploymentStatus
from serving.models import Deployment

logger = logging.getLogger(__name__)


def model_local_copy(version):
    """The version's checkpoint in this node's cache, verified against its sha256."""
    target = Path(settings.CACHE_DIR) / "models" / f"{version.artifact_sha256}.pt"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with (
        tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp,
        version.artifact.open("rb") as source,
    ):
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            tmp.write(chunk)
    if digest.hexdigest() != version.artifact_sha256:
        os.unlink(tmp.name)
        raise ValueError(f"stored artifact of {version} does not match its sha256")
    os.replace(tmp.name, target)
    return target


def deployment_start(deployment_id):
    deployment = Deployment.objects.select_related("model_version").get(pk=deployment_id)
    if deployment.status != DeploymentStatus.STARTING:
        return
    run_dir = Path(settings.WORK_DIR) / "deployments" / str(deployment.pk)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    ready_file = run_dir / "ready.json"
    try:
        weights = model_local_copy(deployment.model_version)
    except (OSError, ValueError) as exc:
        services.deployment_mark_failed(deployment_id=deployment.pk, error=str(exc))
        return
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG", "CUDA_VISIBLE_DEVICES"}}
    env.update(
        {
            "PYTHONPATH": str(settings.BASE_DIR),
            "YOLO_OFFLINE": "true",
            "YOLO_CONFIG_DIR": str(run_dir / ".ultralytics"),
            "MPLCONFIGDIR": str(run_dir / ".matplotlib"),
            "WEIGHTS": str(weights),
            "EXPECTED_SHA256": deployment.artifact_sha256,
            "HOST": settings.SERVING_BIND_HOST,
            "PORT": "0",
            "READY_FILE": str(ready_file),
            "SHUTDOWN_TOKEN": deployment.shutdown_token,
            "MAX_BATCH": str(settings.SERVING_MAX_BATCH),
            "BATCH_WAIT_MS": str(settings.SERVING_BATCH_WAIT_MS),
        }
    )
    log = open(run_dir / "server.log", "ab")  # noqa: SIM115 - the server outlives this function
    process = subprocess.Popen(
        [settings.TRAINER_PYTHON, "-m", "trainers.ultralytics.serve"],
        cwd=run_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    log.close()
    deadline = time.monotonic() + settings.SERVING_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (run_dir / "server.log").read_text(errors="replace")[-2000:]
            services.deployment_mark_failed(
                deployment_id=deployment.pk, error=f"model server exited with code {process.returncode}\n{tail}"
            )
            return
        if ready_file.is_file():
            port = json.loads(ready_file.read_text())["port"]
            url = f"http://{settings.SERVING_HOST}:{port}"
            try:
                health = requests.get(f"{url}/health", timeout=5).json()
            except requests.RequestException:
                time.sleep(0.2)
                continue
            if health.get("sha256") == deployment.artifact_sha256:
                if not services.deployment_mark_active(
                    deployment_id=deployment.pk, server_url=url, host=socket.gethostname(), pid=process.pid
                ):
                    _shutdown(url, deployment.shutdown_token, process.pid)  # stopped while starting
                    services.deployment_mark_stopped(deployment_id=deployment.pk)
                return
        time.sleep(0.2)
    process.kill()
    services.deployment_mark_failed(deployment_id=deployment.pk, error="model server did not become healthy in time")


def _shutdown(url, token, pid):
    try:
        requests.post(f"{url}/shutdown", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except requests.RequestException:
        logger.warning("model server at %s did not answer shutdown; killing pid %s", url, pid)
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(pid, 9)


def deployment_stop(deployment_id):
    deployment = Deployment.objects.select_related("endpoint").get(pk=deployment_id)
    if deployment.status != DeploymentStatus.STOPPING:
        return
    replaced = deployment.endpoint is not None and deployment.endpoint.current_deployment_id != deployment.pk
    if replaced and deployment.server_url:
        # Requests that read the endpoint just before the switch may still be on their way here.
        time.sleep(settings.SERVING_DRAIN_SECONDS)
    if deployment.server_url:
        _shutdown(deployment.server_url, deployment.shutdown_token, deployment.pid)
    services.deployment_mark_stopped(deployment_id=deployment.pk)


def deployments_health_check():
    """Mark active deployments whose model server is gone (refuses connections) or serves another file failed.

    A server that is only slow (a timeout) is left alone: it is busy, not dead. Returns the ids marked failed.
    """
    failed = []
    for deployment in Deployment.objects.filter(status=DeploymentStatus.ACTIVE).exclude(server_url=""):
        try:
            health = requests.get(
                f"{deployment.server_url}/health", timeout=settings.SERVING_HEALTH_TIMEOUT_SECONDS
            ).json()
        except requests.Timeout:
            continue
        except (requests.RequestException, ValueError) as exc:
            reason = f"the model server stopped answering its health check: {exc}"
        else:
            if health.get("sha256") == deployment.artifact_sha256:
                continue
            reason = f"the model server reports sha256 {health.get('sha256')!r}, not the pinned one"
        if services.deployment_mark_unhealthy(deployment_id=deployment.pk, error=reason):
            logger.warning("deployment %s failed: %s", deployment.pk, reason)
            failed.append(deployment.pk)
    return failed
