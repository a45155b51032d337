"""What a data set's label is, in plain Python (no TensorFlow): the task kinds (A1).

    regression   a real scalar     one output, no output function
    binary       two classes       one logit, σ
    classes      K > 2 classes     K logits, softmax

`tfnn.data` reads the kind off a data set's label feature; `tfnn.objectives` and
`tfnn.export` need only these names.
"""

import dataclasses as _dataclasses

__all__ = ["BINARY", "CLASSES", "REGRESSION", "Task"]

REGRESSION, BINARY, CLASSES = "regression", "binary", "classes"


@_dataclasses.dataclass(frozen=True)
class Task:
    """What the label is: `kind` ∈ {regression, binary, classes}, and how many classes."""

    kind: str
    num_classes: int | None = None

    @property
    def outputs(self):
        """Units of the output layer: K logits for classes, one otherwise."""
        return self.num_classes if self.kind == CLASSES else 1
