"""Class names from a user's data.yaml (only `names` is read) or classes.txt.

Nothing else in a user's data.yaml is used: the server finds the images itself
and writes its own data.yaml. Keys that would make Ultralytics fetch or run
something (`download`) or read outside the archive (`path`, `train`, ... with
an absolute path, `..` or a URL) are reported and ignored.
"""

from pathlib import PurePosixPath

import yaml

from datasets.choices import FileRole, FileStatus

MAX_CONFIG_BYTES = 1024 * 1024
MAX_CLASSES = 10_000
MAX_NAME_LENGTH = 200
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
PATH_KEYS = ("path", "train", "val", "test", "minival")
MISSING_NAMES = (
    "data.yaml is missing: the class names are needed (a data.yaml with 'names', or classes.txt with one name a line)"
)


def names_file(files):
    """The file the class names come from: data.yaml (or the one YAML at the top), else classes.txt."""
    top = [f for f in files if "/" not in f]
    for candidate in YAML_NAMES:
        if candidate in top:
            return candidate
    yamls = [f for f in top if f.lower().endswith((".yaml", ".yml"))]
    if len(yamls) == 1:
        return yamls[0]
    for candidate in ("classes.txt", "obj.names", "labels.txt"):
        if candidate in top:
            return candidate
    return None


def _read_text(root, relative, report):
    path = root / relative
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        report.fail(relative, f"{relative} is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
        return None
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        report.fail(relative, f"{relative} is not UTF-8 text")
        return None


def _points_outside(value):
    if not isinstance(value, str):
        return isinstance(value, list) and any(_points_outside(v) for v in value)
    if "://" in value or value.startswith(("/", "~", "\\")) or (len(value) > 1 and value[1] == ":"):
        return True
    return ".." in PurePosixPath(value.replace("\\", "/")).parts


def _key_lines(text):
    """Line numbers of the top-level keys (composing builds nodes only; nothing is constructed or run)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def _names_from_yaml(relative, text, report):
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        report.fail(relative, f"{relative} is not valid YAML: {exc}")
        return []
    if not isinstance(document, dict) or "names" not in document:
        report.fail(relative, f"{relative} has no 'names' key")
        return []
    lines = _key_lines(text)
    if "download" in document:
        report.warning(
            relative,
            "'download' is ignored: the portal never fetches or runs anything named in a data set",
            lines.get("download"),
        )
    for key in PATH_KEYS:
        if key in document and _points_outside(document[key]):
            report.warning(
                relative,
                f"'{key}: {str(document[key])[:100]}' points outside the archive and is ignored: the portal reads "
                "only the archive and writes its own data.yaml",
                lines.get(key),
            )
    names = document["names"]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            keys = None
        if keys != list(range(len(names))):
            report.fail(relative, "'names' keys must be the ids 0..N-1")
            return []
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, str | int) for n in names):
        report.fail(relative, "'names' must be a non-empty list")
        return []
    nc = document.get("nc")
    if nc is not None and nc != len(names):
        report.warning(
            relative, f"'nc: {nc}' disagrees with the {len(names)} names; the names are used", lines.get("nc")
        )
    return [str(n) for n in names]


def _names_from_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_class_names(root, files, report):
    """The ordered class names, or [] with a fatal problem in the report."""
    relative = names_file(files)
    if relative is None:
        report.fail("data.yaml", MISSING_NAMES)
        return []
    report.file(relative, FileRole.NAMES).status = FileStatus.OK
    text = _read_text(root, relative, report)
    if text is None:
        return []
    if relative.lower().endswith((".yaml", ".yml")):
        names = _names_from_yaml(relative, text, report)
    else:
        names = _names_from_lines(text)
        if not names:
            report.fail(relative, f"{relative} lists no class names")
    if not names:
        return []
    if len(names) > MAX_CLASSES:
        report.fail(relative, f"{len(names)} classes; the limit is {MAX_CLASSES}")
        return []
    long = [n for n in names if len(n) > MAX_NAME_LENGTH or not n.strip()]
    if long:
        report.fail(relative, f"class names must be 1 to {MAX_NAME_LENGTH} characters ({long[0][:40]!r})")
        return []
    seen = set()
    for name in names:
        if name in seen:
            report.warning(relative, f"class name {name!r} appears more than once")
        seen.add(name)
    return names
