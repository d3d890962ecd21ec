# The two commands: `make run` starts the portal, `make test` passes the tests.
PY := .venv/bin/python
PORT ?= 8000
FLOWER_PORT ?= 5555
export PORT FLOWER_PORT

.PHONY: run test test-fast lint format venv web worker beat flower migrate bootstrap

venv:
	@scripts/ensure-venv.sh
	@scripts/ensure-assets.sh

run: venv
	@scripts/run.sh

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: venv
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

migrate: venv
	$(PY) manage.py migrate --noinput

bootstrap: migrate
	$(PY) manage.py bootstrap

# Production processes, one each (see docker-compose.yml).
web: venv
	.venv/bin/daphne -b 0.0.0.0 -p $(PORT) portal.asgi:application

worker: venv
	.venv/bin/celery -A portal worker -Q $${WORKER_QUEUES:-gpu,default,serving} \
		--concurrency $${WORKER_CONCURRENCY:-1} --loglevel INFO

beat: venv
	.venv/bin/celery -A portal beat --loglevel INFO

flower: venv
	.venv/bin/celery -A portal flower --port=$(FLOWER_PORT) --basic-auth="$${FLOWER_USER:?}:$${FLOWER_PASSWORD:?}"
