"""The exceptions a caller of the recipe catches, in one place; each message is one line.

    try:
        tfnn.train(**options)
    except errors.OptionError: ...      # a bad option, before anything is written

No TensorFlow import: the command lines catch these before TensorFlow starts.
"""


class OptionError(ValueError):
    """An option the run cannot take; the message is one line, naming it."""


class RunError(ValueError):
    """The run cannot go on (a path, the lock, a disk); the message is one line."""


class RunLocked(RunError):
    """Another process runs the same command."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: there is nothing worth evaluating."""


class EnsembleCollapsed(RuntimeError):
    """The ensemble's validation figure is far worse than its worst member's: not exported."""


class ItemsFailed(RuntimeError):
    """Items of a pool (`tfnn.recipe.pool`) failed; the others finished.

    `failures` maps each failed item's name to the last line of its error; the message is
    one line per failed item."""

    def __init__(self, failures):
        self.failures = dict(failures)
        super().__init__(
            "\n".join(f"{name} failed: {line}" for name, line in self.failures.items())
        )
