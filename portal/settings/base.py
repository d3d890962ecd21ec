"""Settings shared by every mode; every value comes from the environment.

The embedded defaults (SQLite, kombu's filesystem broker, the in-memory channel
layer, files under var/) need no configuration at all. Setting DATABASE_URL,
REDIS_URL and the AWS_* variables switches each part to its production form.
"""

import sys
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "portal.apps.PortalConfig",
    "datasets",
    "jobs",
    "models_registry",
    "serving",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite under var/ unless DATABASE_URL names another one.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web tier and the worker write at the same time: WAL plus immediate
    # transactions turn "database is locked" into a short wait.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# Persistent connections: opening one per request was a measurable part of a prediction's latency.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# The dashboard's own scripts and styles, and the libraries npm installs from package-lock.json
# (scripts/ensure-assets.sh); nothing of theirs is copied into the repository.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/chart.js", NODE_MODULES / "chart.js" / "dist"),
    ("vendor/pico", NODE_MODULES / "@picocss" / "pico" / "css"),
]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# --- Files: the local folder, or S3/MinIO when a bucket is named.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Node-local caches and per-job work dirs (never shared between nodes).
CACHE_DIR = Path(env.str("PORTAL_CACHE_DIR", default=str(VAR_DIR / "cache")))
WORK_DIR = Path(env.str("PORTAL_WORK_DIR", default=str(VAR_DIR / "work")))

# --- Redis: the broker, the channel layer and the cache when REDIS_URL is set.
REDIS_URL = env.str("REDIS_URL", default="")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

EMBEDDED_MODE = not REDIS_URL and DATABASES["default"]["ENGINE"].endswith("sqlite3")

# --- Celery. Training runs for hours: late acks, prefetch 1, and a visibility
# timeout longer than any run so Redis never redelivers a running job. The
# database lease, not the broker, decides whether a job is alive.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "jobs.tasks.job_run": {"queue": "gpu"},
    "serving.tasks.*": {"queue": "serving"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7 * 24 * 3600}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Ten priority levels per queue (Redis emulates priorities with one list per level).
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {"priority_steps": list(range(10)), "sep": ":", "queue_order_strategy": "priority"}
    )
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "reap-expired-job-leases": {
        "task": "jobs.tasks.jobs_reap",
        "schedule": timedelta(seconds=env.int("REAPER_INTERVAL_SECONDS", default=30)),
    },
}

# --- Jobs.
PORTAL_URL = env.str("PORTAL_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")
TRAINER_PYTHON = env.str("TRAINER_PYTHON", default=sys.executable)
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=60)
JOB_LEASE_RENEW_SECONDS = env.int("JOB_LEASE_RENEW_SECONDS", default=10)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
# Queues a job may be sent to: `gpu` by default; add one per pool of GPU workers (e.g. gpu-a100).
JOB_QUEUES = env.list("JOB_QUEUES", default=["gpu"])

# --- Data sets.
DATASET_MAX_UPLOAD_BYTES = env.int("DATASET_MAX_UPLOAD_BYTES", default=2 * 1024**3)
DATASET_MAX_MEMBERS = env.int("DATASET_MAX_MEMBERS", default=100_000)
DATASET_MAX_UNCOMPRESSED_BYTES = env.int("DATASET_MAX_UNCOMPRESSED_BYTES", default=8 * 1024**3)
DATASET_MAX_COMPRESSION_RATIO = env.int("DATASET_MAX_COMPRESSION_RATIO", default=200)
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=40_000_000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # larger uploads stream to a temporary file
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Above this share of unusable images a data set is `invalid`; below it `ready`, the bad files excluded.
DATASET_MAX_ERROR_RATIO = env.float("DATASET_MAX_ERROR_RATIO", default=0.1)
# Share of images held out for validation when an upload has no train/val split (per upload: `val_ratio`).
DATASET_DEFAULT_VAL_RATIO = env.float("DATASET_DEFAULT_VAL_RATIO", default=0.2)
DATASET_MAX_LABEL_BYTES = env.int("DATASET_MAX_LABEL_BYTES", default=32 * 1024**2)
DATASET_MAX_LABEL_LINES = env.int("DATASET_MAX_LABEL_LINES", default=10_000)
DATASET_MAX_ANNOTATION_BYTES = env.int("DATASET_MAX_ANNOTATION_BYTES", default=256 * 1024**2)  # a COCO JSON
DATASET_MAX_REPORTED_PROBLEMS = env.int("DATASET_MAX_REPORTED_PROBLEMS", default=1000)  # listed on the row
DATASET_PREVIEWS_PER_SPLIT = env.int("DATASET_PREVIEWS_PER_SPLIT", default=100)
DATASET_PREVIEW_SIZE = env.int("DATASET_PREVIEW_SIZE", default=256)
DATASET_INGEST_THREADS = env.int("DATASET_INGEST_THREADS", default=0)  # 0: one per CPU, at most 8
DATASET_PROGRESS_INTERVAL_SECONDS = env.float("DATASET_PROGRESS_INTERVAL_SECONDS", default=1.0)
# An ingest without progress for this long is re-queued (up to DATASET_INGEST_MAX_ATTEMPTS), then failed.
DATASET_INGEST_STALE_SECONDS = env.int("DATASET_INGEST_STALE_SECONDS", default=900)
DATASET_INGEST_MAX_ATTEMPTS = env.int("DATASET_INGEST_MAX_ATTEMPTS", default=2)
# Start a training job (default configuration) when an upload becomes ready; per upload: `auto_train`.
DATASET_AUTO_TRAIN = env.bool("DATASET_AUTO_TRAIN", default=False)
CELERY_BEAT_SCHEDULE["reap-stalled-dataset-ingests"] = {
    "task": "datasets.tasks.dataset_ingests_reap_task",
    "schedule": timedelta(seconds=env.int("DATASET_REAPER_INTERVAL_SECONDS", default=60)),
}

# --- Review and notifications.
REVIEW_SEPARATION_OF_DUTIES = env.bool("REVIEW_SEPARATION_OF_DUTIES", default=True)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@localhost")
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_RETRY_BASE_SECONDS = env.int("WEBHOOK_RETRY_BASE_SECONDS", default=10)
WEBHOOK_RETRY_MAX_SECONDS = env.int("WEBHOOK_RETRY_MAX_SECONDS", default=3600)
WEBHOOK_TIMEOUT_SECONDS = env.int("WEBHOOK_TIMEOUT_SECONDS", default=10)
WEBHOOK_SWEEP_INTERVAL_SECONDS = env.int("WEBHOOK_SWEEP_INTERVAL_SECONDS", default=60)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=EMBEDDED_MODE)

# --- Serving.
SERVING_HOST = env.str("SERVING_HOST", default="127.0.0.1")  # how the web tier reaches model servers
SERVING_BIND_HOST = env.str("SERVING_BIND_HOST", default=SERVING_HOST)
SERVING_START_TIMEOUT_SECONDS = env.int("SERVING_START_TIMEOUT_SECONDS", default=120)
PREDICT_MAX_IMAGE_BYTES = env.int("PREDICT_MAX_IMAGE_BYTES", default=20 * 1024**2)
# After a switch the replaced model server keeps answering this long before it is asked to stop
# (requests already routed to it finish; the server itself also waits for its in-flight requests).
SERVING_DRAIN_SECONDS = env.float("SERVING_DRAIN_SECONDS", default=2.0)
SERVING_USAGE_WINDOW_MINUTES = env.int("SERVING_USAGE_WINDOW_MINUTES", default=60)
# Micro-batching in the model server: requests queued together are predicted in one call, up to
# this many images; a batch waits this long for more (0: only what is already queued, no added latency).
SERVING_MAX_BATCH = env.int("SERVING_MAX_BATCH", default=8)
SERVING_BATCH_WAIT_MS = env.float("SERVING_BATCH_WAIT_MS", default=0.0)
INFERENCE_MAX_IMAGES = env.int("INFERENCE_MAX_IMAGES", default=1000)
# Files in one multipart request (Django's default is 100): an inference job's images; more go in a zip.
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DATA_UPLOAD_MAX_NUMBER_FILES", default=1000)
SERVING_HEALTH_TIMEOUT_SECONDS = env.float("SERVING_HEALTH_TIMEOUT_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE["health-check-deployments"] = {
    "task": "serving.tasks.deployments_health_check_task",
    "schedule": timedelta(seconds=env.int("SERVING_HEALTH_INTERVAL_SECONDS", default=30)),
}

# --- API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vision model portal API",
    "DESCRIPTION": "Upload data sets, train YOLO models, review and serve them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI ships with the package: the docs page works without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"daphne": {"level": "WARNING"}},
}
