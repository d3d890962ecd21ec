"""Reading a trainer's configuration from environment variables."""

import os
from dataclasses import dataclass


class ConfigError(Exception):
    """A required variable is missing or malformed."""


def _required(env, name):
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} is required")
    return value


def _int(env, name, default):
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from exc


@dataclass(frozen=True)
class TrainConfig:
    """What train.py needs; every field maps to one environment variable."""

    job_id: str
    callback_url: str
    callback_token: str
    fencing_token: int
    data_yaml: str
    output_path: str
    model_name: str = "yolo11n"
    epochs: int = 10
    imgsz: int = 640
    batch: int = 16
    device: str = ""
    seed: int = 0
    patience: int = 100
    workers: int = 2
    base_weights: str = ""

    @classmethod
    def from_env(cls, env=None):
        """Build the configuration from `env` (default: os.environ).

        Raises:
            ConfigError: naming the first missing or malformed variable.
        """
        env = os.environ if env is None else env
        return cls(
            job_id=_required(env, "JOB_ID"),
            callback_url=_required(env, "CALLBACK_URL"),
            callback_token=_required(env, "CALLBACK_TOKEN"),
            fencing_token=_int(env, "FENCING_TOKEN", int(_required(env, "FENCING_TOKEN"))),
            data_yaml=_required(env, "DATA_YAML"),
            output_path=_required(env, "OUTPUT_PATH"),
            model_name=env.get("MODEL_NAME", "yolo11n") or "yolo11n",
            epochs=_int(env, "EPOCHS", 10),
            imgsz=_int(env, "IMGSZ", 640),
            batch=_int(env, "BATCH_SIZE", 16),
            device=env.get("DEVICE", ""),
            seed=_int(env, "SEED", 0),
            patience=_int(env, "PATIENCE", 100),
            workers=_int(env, "WORKERS", 2),
            base_weights=env.get("BASE_WEIGHTS", ""),
        )
