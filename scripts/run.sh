#!/usr/bin/env bash
# `make run`: migrate, bootstrap, then web (daphne), worker (+beat) and Flower together.
# Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
FLOWER_PORT="${FLOWER_PORT:-5555}"
PY=.venv/bin/python
mkdir -p "${VAR_DIR:-var}/static"
$PY manage.py migrate --noinput
$PY manage.py bootstrap
if [ -z "${FLOWER_PASSWORD:-}" ]; then
  FLOWER_PASSWORD_FILE="${VAR_DIR:-var}/flower-password.txt"
  [ -f "$FLOWER_PASSWORD_FILE" ] || $PY -c "import secrets; print(secrets.token_urlsafe(12))" > "$FLOWER_PASSWORD_FILE"
  FLOWER_PASSWORD=$(cat "$FLOWER_PASSWORD_FILE")
fi
FLOWER_USER="${FLOWER_USER:-admin}"

pids=()
stop() {
  trap - INT TERM EXIT
  echo "==> stopping"
  # SIGQUIT is Celery's cold shutdown: a running training is not waited for; its trainer
  # dies with the worker and the reaper re-queues the job at the next start.
  kill -TERM "${pids[0]}" "${pids[2]}" 2>/dev/null || true
  kill -QUIT "${pids[1]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/daphne -b "${BIND:-127.0.0.1}" -p "$PORT" portal.asgi:application &
pids+=($!)
.venv/bin/celery -A portal worker -B -Q gpu,default,serving --concurrency "${WORKER_CONCURRENCY:-2}" \
  --loglevel INFO &
pids+=($!)
.venv/bin/celery -A portal flower --port="$FLOWER_PORT" --address=127.0.0.1 \
  --basic-auth="$FLOWER_USER:$FLOWER_PASSWORD" --loglevel WARNING &
pids+=($!)
echo "==> dashboard: http://127.0.0.1:$PORT/   API: http://127.0.0.1:$PORT/api/v1/   admin: http://127.0.0.1:$PORT/admin/"
echo "==> flower:  http://127.0.0.1:$FLOWER_PORT/  (user $FLOWER_USER, password $FLOWER_PASSWORD)"
wait -n "${pids[@]}"
