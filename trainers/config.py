"""Reading a trainer's configuration from environment variables."""

import json
import os
from dataclasses import dataclass, field

TASK_SUFFIXES = {"detect": "", "segment": "-seg", "classify": "-cls"}


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


def _float(env, name, default):
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from exc


def _task(env):
    task = env.get("TASK", "detect") or "detect"
    if task not in TASK_SUFFIXES:
        raise ConfigError(f"TASK must be one of {', '.join(TASK_SUFFIXES)}, not {task!r}")
    return task


@dataclass(frozen=True)
class CallbackConfig:
    """Where and how a CLI reports to the portal."""

    job_id: str
    callback_url: str
    callback_token: str
    fencing_token: int

    @classmethod
    def from_env(cls, env):
        _required(env, "FENCING_TOKEN")
        return cls(
            job_id=_required(env, "JOB_ID"),
            callback_url=_required(env, "CALLBACK_URL"),
            callback_token=_required(env, "CALLBACK_TOKEN"),
            fencing_token=_int(env, "FENCING_TOKEN", 0),
        )


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
    task: str = "detect"
    epochs: int = 10
    imgsz: int = 640
    batch: int = 16
    device: str = ""
    seed: int = 0
    patience: int = 100
    workers: int = 2
    optimizer: str = "auto"
    lr0: float = 0.01
    augment: dict = field(default_factory=dict)
    base_weights: str = ""
    resume_candidates: tuple = ()

    @property
    def model_yaml(self):
        """The Ultralytics model YAML for this family, scale and task (e.g. yolo11n-seg.yaml)."""
        return f"{self.model_name}{TASK_SUFFIXES[self.task]}.yaml"

    @classmethod
    def from_env(cls, env=None):
        """Build the configuration from `env` (default: os.environ).

        Raises:
            ConfigError: naming the first missing or malformed variable.
        """
        env = os.environ if env is None else env
        callback = CallbackConfig.from_env(env)
        try:
            augment = json.loads(env.get("AUGMENT") or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"AUGMENT must be a JSON object ({exc})") from exc
        if not isinstance(augment, dict):
            raise ConfigError("AUGMENT must be a JSON object")
        candidates = tuple(p for p in env.get("RESUME_CANDIDATES", "").split(os.pathsep) if p)
        return cls(
            job_id=callback.job_id,
            callback_url=callback.callback_url,
            callback_token=callback.callback_token,
            fencing_token=callback.fencing_token,
            data_yaml=_required(env, "DATA_YAML"),
            output_path=_required(env, "OUTPUT_PATH"),
            model_name=env.get("MODEL_NAME", "yolo11n") or "yolo11n",
            task=_task(env),
            epochs=_int(env, "EPOCHS", 10),
            imgsz=_int(env, "IMGSZ", 640),
            batch=_int(env, "BATCH_SIZE", 16),
            device=env.get("DEVICE", ""),
            seed=_int(env, "SEED", 0),
            patience=_int(env, "PATIENCE", 100),
            workers=_int(env, "WORKERS", 2),
            optimizer=env.get("OPTIMIZER", "auto") or "auto",
            lr0=_float(env, "LR0", 0.01),
            augment=augment,
            base_weights=env.get("BASE_WEIGHTS", ""),
            resume_candidates=candidates,
        )


@dataclass(frozen=True)
class EvaluateConfig:
    """What evaluate.py needs; every field maps to one environment variable."""

    job_id: str
    callback_url: str
    callback_token: str
    fencing_token: int
    checkpoint_path: str
    data_yaml: str
    output_path: str
    task: str = "detect"
    split: str = "val"
    conf: float = 0.001
    iou: float = 0.7
    imgsz: int = 640
    batch: int = 16
    device: str = ""

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        callback = CallbackConfig.from_env(env)
        return cls(
            job_id=callback.job_id,
            callback_url=callback.callback_url,
            callback_token=callback.callback_token,
            fencing_token=callback.fencing_token,
            checkpoint_path=_required(env, "CHECKPOINT_PATH"),
            data_yaml=_required(env, "DATA_YAML"),
            output_path=_required(env, "OUTPUT_PATH"),
            task=_task(env),
            split=env.get("SPLIT", "val") or "val",
            conf=_float(env, "CONFIDENCE_THRESHOLD", 0.001),
            iou=_float(env, "IOU_THRESHOLD", 0.7),
            imgsz=_int(env, "IMGSZ", 640),
            batch=_int(env, "BATCH_SIZE", 16),
            device=env.get("DEVICE", ""),
        )
