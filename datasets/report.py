"""The validation report: every problem with its file, line and reason, and each file's fate."""

from dataclasses import dataclass, field

from datasets.choices import FileRole, FileStatus

MAX_PROBLEMS_PER_FILE = 50


@dataclass
class FileRecord:
    """One file of the upload, as the file list shows it."""

    path: str
    role: str = FileRole.OTHER
    split: str = ""
    status: str = FileStatus.IGNORED
    problems: list = field(default_factory=list)
    hidden_problems: int = 0
    class_ids: set = field(default_factory=set)
    instances: int = 0
    width: int | None = None
    height: int | None = None

    def add_problem(self, reason, line, severity):
        if len(self.problems) < MAX_PROBLEMS_PER_FILE:
            self.problems.append({"line": line, "reason": reason, "severity": severity})
        else:
            self.hidden_problems += 1

    def problem_list(self):
        if not self.hidden_problems:
            return self.problems
        more = {"line": None, "reason": f"... and {self.hidden_problems} more problems", "severity": "error"}
        return [*self.problems, more]


@dataclass
class ValidationReport:
    """What validation found.

    `errors` are problems that exclude a file (or, with `fatal`, the whole
    data set); `warnings` change nothing that reaches training. `excluded`
    lists the image files that will not be trained on.
    """

    classes: list = field(default_factory=list)
    task: str = "detect"
    format: str = ""
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    fatal: list = field(default_factory=list)
    num_images: int = 0
    stats: dict = field(default_factory=dict)
    excluded: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)
    auto_split: bool = False
    errors_total: int = 0
    warnings_total: int = 0
    max_listed: int = 1000

    def file(self, path, role=None):
        record = self.files.get(path)
        if record is None:
            record = self.files[path] = FileRecord(path=path)
        if role is not None:
            record.role = role
        return record

    def problem(self, file, reason, line=None):
        """An error: the file (or the image it labels) does not reach training."""
        self.errors_total += 1
        if len(self.errors) < self.max_listed:
            self.errors.append({"file": file, "line": line, "reason": reason})
        if file is not None:
            self.file(file).add_problem(reason, line, "error")

    def warning(self, file, reason, line=None):
        """Worth knowing, but nothing is excluded because of it."""
        self.warnings_total += 1
        if len(self.warnings) < self.max_listed:
            self.warnings.append({"file": file, "line": line, "reason": reason})
        if file is not None:
            self.file(file).add_problem(reason, line, "warning")

    def fail(self, file, reason, line=None):
        """A problem with the whole data set: it becomes invalid."""
        self.fatal.append({"file": file, "line": line, "reason": reason})

    def exclude(self, path):
        if path not in self.excluded:
            self.excluded.append(path)
        self.file(path).status = FileStatus.EXCLUDED

    def listed_errors(self):
        """Fatal problems first, then file errors, with a last line when some were left out."""
        listed = self.fatal + self.errors
        if self.errors_total > len(self.errors):
            more = self.errors_total - len(self.errors)
            listed.append({"file": None, "line": None, "reason": f"... and {more} more problems (see the file list)"})
        return listed

    def listed_warnings(self):
        listed = list(self.warnings)
        if self.warnings_total > len(self.warnings):
            more = self.warnings_total - len(self.warnings)
            listed.append({"file": None, "line": None, "reason": f"... and {more} more warnings (see the file list)"})
        return listed
