"""Errors that the CLI turns into exit code 2 with a readable message."""

from __future__ import annotations

import errno
from dataclasses import dataclass

#: OSErrors caused by the machine (full disk, permissions), not by polytask.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM,
                      errno.EFBIG}


class PolytaskError(Exception):
    """Base class for errors caused by user input (config, data, model dir)."""


class ConfigError(PolytaskError):
    pass


class ModelDirError(PolytaskError):
    pass


class CheckpointError(PolytaskError):
    """A checkpoint or output directory cannot be read or written safely."""


class OutputExistsError(PolytaskError):
    """The output path holds something polytask did not write (or must not replace)."""


class TrainingDiverged(PolytaskError):
    """A loss became NaN/inf; raised before the optimizer step so weights stay finite."""


@dataclass(frozen=True)
class DataIssue:
    file: str
    line: int | None
    field: str
    message: str
    hint: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: [{self.field}] {self.message} (hint: {self.hint})"


class DataValidationError(PolytaskError):
    """Every problem found in the data at once, each with file:line, field and a hint."""

    def __init__(self, issues: list[DataIssue]) -> None:
        self.issues = issues
        shown = "\n".join(f"  - {issue}" for issue in issues[:200])
        more = f"\n  ... and {len(issues) - 200} more" if len(issues) > 200 else ""
        super().__init__(f"{len(issues)} data problem(s) found:\n{shown}{more}")



def environment_error(exc: OSError) -> str | None:
    """A one-line message for an OSError the machine caused (None for any other)."""
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = f"{exc.filename}: " if exc.filename else ""
    return (f"{where}{exc.strerror}. Free space or fix the permissions, or write elsewhere; "
            "files written earlier are intact")
