"""Exception hierarchy: retriable (try again later) vs poison (this input never works)."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of the pipeline's own errors."""


class RetriableError(PipelineError):
    """A dependency (broker, database) is unavailable; the same input may succeed later."""


class PoisonError(PipelineError):
    """This record can never be processed; it goes to the dead-letter topic."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
