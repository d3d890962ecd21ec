"""Starting the real portal processes (daphne, a Celery worker with beat) for end-to-end tests."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _base_env(var_dir, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_", "AWS_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings.local",
            "VAR_DIR": str(var_dir),
            "PORT": str(port),
            "PORTAL_URL": f"http://127.0.0.1:{port}",
            "JOB_LEASE_SECONDS": "30",
            "JOB_LEASE_RENEW_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


@contextmanager
def postgres_database(base_url):
    """A fresh PostgreSQL database on the server of `base_url`, dropped afterwards."""
    import psycopg

    parsed = urlparse(base_url)
    name = f"portal_e2e_{uuid.uuid4().hex[:10]}"
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stack:
    """A running portal: base URL, the processes, and their logs."""

    def __init__(self, env, var_dir):
        self.env = env
        self.var_dir = var_dir
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes = {}

    def manage(self, *args, input_text=None):
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            input=input_text,
            timeout=300,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result

    def start(self, name, argv):
        log = open(self.var_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.processes[name] = (
            subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            ),
            log,
        )

    def start_web(self):
        self.start("web", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "portal.asgi:application"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/api/v1/", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.3)
        raise RuntimeError(f"daphne did not start:\n{self.log('web')}")

    def start_worker(self, name="worker", queues="gpu,default,serving", beat=True):
        argv = [str(BIN / "celery"), "-A", "portal", "worker", "-Q", queues, "--concurrency", "2"]
        if beat:
            argv += ["-B", "--schedule", str(self.var_dir / f"beat-{uuid.uuid4().hex[:6]}")]
        argv += ["--loglevel", "INFO", "-n", f"e2e-{uuid.uuid4().hex[:6]}@%h"]
        self.start(name, argv)

    def kill(self, name):
        """SIGKILL a process group, as a crashed node would die."""
        process, log = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()

    def log(self, name, tail=8000):
        path = self.var_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text

    def stop(self):
        for process, _log in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()


@contextmanager
def running_stack(tmp_path, *, database_url=None, redis_url=None, env=None):
    var_dir = tmp_path / "var"
    (var_dir / "static").mkdir(parents=True)
    env = {**_base_env(var_dir, free_port()), **(env or {})}
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    stack = Stack(env, var_dir)
    stack.manage("migrate", "--noinput")
    stack.manage("bootstrap", "--no-demo-accounts")
    stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import Group, User\n"
        "User.objects.create_user('owner', password='owner-pw-123')\n"
        "r = User.objects.create_user('reviewer', password='reviewer-pw-123', is_staff=True)\n"
        "r.groups.add(Group.objects.get(name='reviewers'))\n",
    )
    try:
        stack.start_web()
        stack.start_worker()
        yield stack
    except BaseException:
        print("---- web log ----\n", stack.log("web"))
        print("---- worker log ----\n", stack.log("worker"))
        raise
    finally:
        stack.stop()
        shutil.rmtree(var_dir / "broker", ignore_errors=True)


@contextmanager
def redis_server():
    """A Redis server of the test's own on a free port, so a test can stop and restart it."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    class Server:
        url = f"redis://127.0.0.1:{port}/0"
        process = None

        def start(self):
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        return
                time.sleep(0.1)
            raise RuntimeError("redis-server did not start")

        def stop(self):
            self.process.terminate()
            self.process.wait(timeout=10)

    server = Server()
    server.start()
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()
