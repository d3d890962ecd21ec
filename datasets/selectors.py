"""Reads for data sets, always scoped to the requesting user."""

from datasets.choices import FileStatus
from datasets.models import Dataset, DatasetFile
from datasets.previews import class_colour_hex


def dataset_list(*, user):
    queryset = Dataset.objects.select_related("owner")
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)


def dataset_file_list(*, dataset, split=None, status=None, role=None, class_name=None, problems=None, search=None):
    """The files of a data set, filtered; an unknown class name matches nothing."""
    queryset = DatasetFile.objects.filter(dataset=dataset)
    if split:
        queryset = queryset.filter(split=split)
    if status:
        queryset = queryset.filter(status=status)
    if role:
        queryset = queryset.filter(role=role)
    if problems is not None:
        queryset = queryset.filter(has_problems=problems)
    if search:
        queryset = queryset.filter(path__icontains=search)
    if class_name:
        if class_name not in dataset.classes:
            return queryset.none()
        queryset = queryset.filter(class_ids__contains=f",{dataset.classes.index(class_name)},")
    return queryset.order_by("split", "path", "id")


def dataset_gallery(*, dataset, split=None, class_name=None):
    """The images of a split that have a thumbnail, optionally only those showing a class."""
    return (
        dataset_file_list(dataset=dataset, split=split, class_name=class_name)
        .exclude(preview="")
        .filter(status__in=[FileStatus.OK, FileStatus.BACKGROUND])
    )


def dataset_class_list(dataset):
    return [
        {"id": index, "name": name, "colour": class_colour_hex(index)} for index, name in enumerate(dataset.classes)
    ]


def dataset_statistics(dataset):
    stats = dataset.stats or {}
    return {
        "id": dataset.pk,
        "status": dataset.status,
        "task": dataset.task,
        "format": dataset.format,
        "classes": dataset_class_list(dataset),
        "num_images": dataset.num_images,
        "images": stats.get("images", {}),
        "background": stats.get("background", {}),
        "instances": stats.get("instances", {}),
        "images_per_class": stats.get("images_per_class", {}),
        "image_size": stats.get("image_size", {}),
        "excluded_count": stats.get("excluded_count", 0),
        "errors_count": stats.get("errors_count", len(dataset.errors)),
        "warnings_count": stats.get("warnings_count", len(dataset.warnings)),
        "split": {
            "auto": stats.get("split", {}).get("auto", False),
            "val_ratio": (dataset.options or {}).get("val_ratio"),
            "seed": (dataset.options or {}).get("split_seed"),
        },
    }


def dataset_snapshot(dataset):
    """What a live-feed client gets first: the data set's state from the database."""
    return {
        "type": "snapshot",
        "dataset": {
            "id": dataset.pk,
            "name": dataset.name,
            "version": dataset.version,
            "status": dataset.status,
            "stage": dataset.stage,
            "progress": dataset.progress,
            "task": dataset.task,
            "format": dataset.format,
            "classes": dataset.classes,
            "num_images": dataset.num_images,
            "errors_count": len(dataset.errors),
            "warnings_count": len(dataset.warnings),
            "validated_at": dataset.validated_at.isoformat() if dataset.validated_at else None,
        },
    }
