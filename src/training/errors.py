"""What can go wrong while learning from a slice.

The tree, each with an HTTP-like ``status`` and a short ``title`` so that a caller (the client or
a node's compute-to-data route) can translate it without this package importing either::

    TrainingError                 base, status 422
    ├── FormulaError              a composition string that cannot be parsed (with its position)
    ├── TrainingSetError          no usable target, inputs or rows in the slice
    ├── ScreeningError            candidates that cannot be built or scored
    ├── TrainingLimitError        a row or time bound of the job exceeded (status 413 / 408)
    └── UntrustedModelError       a saved model holding types outside the allow-list (status 400)
"""

from __future__ import annotations

__all__ = [
    "FormulaError",
    "ScreeningError",
    "TrainingError",
    "TrainingLimitError",
    "TrainingSetError",
    "UntrustedModelError",
]


class TrainingError(ValueError):
    """Base of every error raised by ``training``."""

    status: int = 422
    title: str = "Training failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class FormulaError(TrainingError):
    """A formula string that is not a valid composition; ``position`` is 0-based."""

    title = "Invalid formula"

    def __init__(self, formula: str, position: int, reason: str) -> None:
        caret = " " * position + "^"
        super().__init__(f"{reason} at position {position} in {formula!r}\n  {formula}\n  {caret}")
        self.formula = formula
        self.position = position
        self.reason = reason


class TrainingSetError(TrainingError):
    """The slice and schema do not give a usable training set."""

    title = "Unusable training set"


class ScreeningError(TrainingError):
    """Screening candidates could not be built or scored."""

    title = "Screening failed"


class TrainingLimitError(TrainingError):
    """A bound of the training job (rows or seconds) was exceeded."""

    title = "Training limit exceeded"

    def __init__(self, detail: str, *, status: int = 413) -> None:
        super().__init__(detail)
        self.status = status


class UntrustedModelError(TrainingError):
    """A saved model file holds types that are not on the allow-list; it is not loaded."""

    status = 400
    title = "Untrusted model file"

    def __init__(self, path: str, types: list[str]) -> None:
        super().__init__(f"{path} holds types outside the allow-list: {', '.join(types)}")
        self.types = types
