"""Trainer-side durability and configuration: published checkpoints, resume, env config, evaluation helpers."""

import hashlib
import os
from types import SimpleNamespace

import pytest

from tests.trainers.test_trainer_library import REQUIRED
from trainers.config import ConfigError, EvaluateConfig, TrainConfig
from trainers.ultralytics import train as train_module
from trainers.ultralytics.evaluate import confusion, draw_confusion_matrix, per_class_rows, pr_curves
from trainers.ultralytics.train import pick_resume_checkpoint, publish_checkpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- publish_checkpoint


def test_publish_checkpoint_writes_the_copy_and_its_sidecar(tmp_path):
    source = tmp_path / "last.pt"
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one copy chunk
    source.write_bytes(data)
    folder = tmp_path / "out" / "checkpoints"

    target = publish_checkpoint(source, folder, "last-e0003.pt")

    assert target == folder / "last-e0003.pt"
    assert target.read_bytes() == data
    sidecar = folder / "last-e0003.pt.sha256"
    assert sidecar.read_text() == f"{hashlib.sha256(data).hexdigest()} {len(data)}\n"
    assert sorted(p.name for p in folder.iterdir()) == ["last-e0003.pt", "last-e0003.pt.sha256"]  # no temporaries


def test_publish_checkpoint_never_shows_a_sidecar_before_the_complete_file(tmp_path, monkeypatch):
    source = tmp_path / "best.pt"
    source.write_bytes(b"first version")
    folder = tmp_path / "checkpoints"
    publish_checkpoint(source, folder, "best-e0001.pt")
    source.write_bytes(b"second, longer version of the weights")
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    real_replace = os.replace
    seen = []

    def checking_replace(src, dst):
        if str(dst).endswith(".sha256"):
            # The sidecar appears only once the file it vouches for is complete.
            target = folder / "best-e0001.pt"
            seen.append(hashlib.sha256(target.read_bytes()).hexdigest())
        real_replace(src, dst)

    monkeypatch.setattr(train_module.os, "replace", checking_replace)
    publish_checkpoint(source, folder, "best-e0001.pt")

    assert seen == [expected]
    assert (folder / "best-e0001.pt.sha256").read_text().split() == [expected, str(source.stat().st_size)]


# --- pick_resume_checkpoint


@pytest.fixture
def checkpoints(tmp_path):
    import torch

    def save(name, content):
        path = tmp_path / name
        torch.save(content, path)
        return str(path)

    return save


def test_pick_resume_checkpoint_skips_a_torn_file(checkpoints, tmp_path):
    good = checkpoints("last-e0003.pt", {"epoch": 2, "optimizer": {"state": {}}})
    whole = (tmp_path / "last-e0003.pt").read_bytes()
    torn = tmp_path / "last-e0004.pt"
    torn.write_bytes(whole[: len(whole) // 2])

    assert pick_resume_checkpoint([str(torn), good]) == (good, 3)


def test_pick_resume_checkpoint_takes_the_first_good_one(checkpoints):
    newer = checkpoints("a.pt", {"epoch": 5, "optimizer": {"state": {}}})
    older = checkpoints("b.pt", {"epoch": 2, "optimizer": {"state": {}}})

    assert pick_resume_checkpoint([newer, older]) == (newer, 6)


@pytest.mark.parametrize(
    "finished",
    [{"epoch": -1, "optimizer": {"state": {}}}, {"epoch": 4, "optimizer": None}, {"model": "weights only"}],
    ids=["epoch-minus-one", "no-optimizer", "no-epoch"],
)
def test_pick_resume_checkpoint_skips_a_finished_checkpoint(checkpoints, finished):
    done = checkpoints("best.pt", finished)
    good = checkpoints("last.pt", {"epoch": 1, "optimizer": {"state": {}}})

    assert pick_resume_checkpoint([done, good]) == (good, 2)


def test_pick_resume_checkpoint_with_nothing_usable(checkpoints, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    finished = checkpoints("best.pt", {"epoch": -1, "optimizer": None})

    assert pick_resume_checkpoint([str(garbage), finished, str(tmp_path / "missing.pt")]) == (None, 0)
    assert pick_resume_checkpoint([]) == (None, 0)


# --- TrainConfig


@pytest.mark.parametrize(
    ("task", "model", "yaml"),
    [
        ("segment", "yolo11n", "yolo11n-seg.yaml"),
        ("classify", "yolo11n", "yolo11n-cls.yaml"),
        ("detect", "yolov8s", "yolov8s.yaml"),
        ("", "yolo11n", "yolo11n.yaml"),
    ],
)
def test_model_yaml_follows_the_task(task, model, yaml):
    config = TrainConfig.from_env({**REQUIRED, "TASK": task, "MODEL_NAME": model})

    assert config.model_yaml == yaml


def test_a_bad_task_names_the_variable():
    with pytest.raises(ConfigError, match="TASK"):
        TrainConfig.from_env({**REQUIRED, "TASK": "pose"})


@pytest.mark.parametrize("augment", ["{not json", "[1, 2]", '"fliplr"'])
def test_a_bad_augment_names_the_variable(augment):
    with pytest.raises(ConfigError, match="AUGMENT"):
        TrainConfig.from_env({**REQUIRED, "AUGMENT": augment})


def test_augment_is_parsed_from_json():
    config = TrainConfig.from_env({**REQUIRED, "AUGMENT": '{"fliplr": 0, "mosaic": 0.5}'})

    assert config.augment == {"fliplr": 0, "mosaic": 0.5}


def test_resume_candidates_are_split_on_the_path_separator():
    raw = os.pathsep.join(["/cache/checkpoints/aaa.pt", "", "/cache/checkpoints/bbb.pt"])

    config = TrainConfig.from_env({**REQUIRED, "RESUME_CANDIDATES": raw})

    assert config.resume_candidates == ("/cache/checkpoints/aaa.pt", "/cache/checkpoints/bbb.pt")
    assert TrainConfig.from_env(REQUIRED).resume_candidates == ()


@pytest.mark.parametrize("config_class", [TrainConfig, EvaluateConfig])
def test_a_malformed_fencing_token_names_the_variable(config_class):
    env = {**REQUIRED, "CHECKPOINT_PATH": "/tmp/best.pt", "FENCING_TOKEN": "two"}

    with pytest.raises(ConfigError, match="FENCING_TOKEN"):
        config_class.from_env(env)


# --- evaluation helpers


def test_draw_confusion_matrix_writes_a_png(tmp_path):
    path = tmp_path / "confusion_matrix.png"
    matrix = {"labels": ["square", "disc", "background"], "matrix": [[5, 1, 0], [0, 3, 2], [1, 0, 0]]}

    draw_confusion_matrix(matrix, path)

    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000


def test_draw_confusion_matrix_of_zeros(tmp_path):
    path = tmp_path / "empty.png"

    draw_confusion_matrix({"labels": ["a", "b", "background"], "matrix": [[0] * 3] * 3}, path)

    assert path.read_bytes().startswith(PNG_MAGIC)


def test_confusion_adds_background_and_names_axes():
    metrics = SimpleNamespace(
        confusion_matrix=SimpleNamespace(matrix=FakeArray([[2.0, 1.0, 0.0], [0, 3, 1], [1, 0, 0]]))
    )

    result = confusion(metrics, {1: "disc", 0: "square"})

    assert result == {
        "labels": ["square", "disc", "background"],
        "matrix": [[2, 1, 0], [0, 3, 1], [1, 0, 0]],
        "rows": "predicted",
        "columns": "true",
    }
    assert confusion(SimpleNamespace(), {0: "a"}) == {}


def test_per_class_rows_rename_ultralytics_keys():
    summary = [{"Class": "square", "Images": 3, "Instances": 4, "Box-P": 0.123456, "Box-R": 0.5, "mAP50": 0.75}]
    metrics = SimpleNamespace(summary=lambda: summary)

    assert per_class_rows(metrics) == [
        {"class": "square", "images": 3.0, "instances": 4.0, "precision": 0.12346, "recall": 0.5, "mAP50": 0.75}
    ]
    assert per_class_rows(SimpleNamespace()) == []


def test_pr_curves_are_downsampled_per_class():
    recall = [i / 1000 for i in range(1000)]
    precision = [[1 - r for r in recall], [0.5] * 1000]
    metrics = SimpleNamespace(curves_results=[(recall, precision)], box=SimpleNamespace(ap_class_index=[0, 1]))

    curves = pr_curves(metrics, {0: "square", 1: "disc"})

    assert len(curves["recall"]) <= 101
    assert curves["recall"][0] == 0.0
    assert set(curves["precision"]) == {"square", "disc"}
    assert len(curves["precision"]["square"]) == len(curves["recall"])
    assert curves["precision"]["disc"][0] == 0.5
    assert pr_curves(SimpleNamespace(curves_results=[]), {}) == {}


class FakeArray:
    def __init__(self, rows):
        self.rows = rows

    def tolist(self):
        return self.rows
