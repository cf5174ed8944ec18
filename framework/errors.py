"""Errors the CLI reports as one clear line (the traceback only with --debug)."""


class SoundstageError(Exception):
    """A user-facing error: bad recipe key, unknown stage, missing file, bad checkpoint."""


class RecipeError(SoundstageError):
    """A recipe that cannot be loaded, merged or validated; the message names file and key path."""


class StageNotFoundError(SoundstageError):
    """A stage name that no built-in or installed plugin registers."""


class CheckpointError(SoundstageError):
    """A checkpoint that is missing, unsafe, from another stage or for an incompatible config."""


class PreemptedError(SoundstageError):
    """Training stopped on SIGTERM after saving a checkpoint; re-running resumes (exit code 143)."""

    exit_code = 143
