"""Which versions of a model to serve: TensorFlow Serving's `model_version_policy`.

    latest:N        the N highest versions that load (default N = 1)
    specific:V,…    the listed versions
    all             every version

A version is what `tfnn.versions.parse_version` reads: ASCII digits with a value within
int64 (TensorFlow Serving's version type); anything else ("v2", "1.0", Arabic-Indic digits,
5,000 digits) is not one.
"""

import dataclasses

from tfnn.versions import parse_version

KINDS = ("latest", "specific", "all")


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which versions to serve: `kind` is "latest" (the `num_versions` highest that load),
    "specific" (`versions`) or "all"."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Expected a policy kind in {KINDS}. Received: {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"Expected latest:N with N >= 1. Received: latest:{self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("Expected at least one version for specific:V,…")

    @classmethod
    def parse(cls, text):
        """'latest', 'latest:N', 'specific:V1,V2,…' or 'all'."""
        kind, _, argument = text.partition(":")
        if kind == "latest":
            if argument and not (argument.isascii() and argument.isdigit()):
                raise ValueError(f"Expected latest:<positive integer>. Received: {text!r}")
            return cls("latest", int(argument or 1))
        if kind == "specific":
            versions = [parse_version(v) for v in argument.split(",")]
            if None in versions:
                raise ValueError(f"Expected specific:<version>,<version>,…. Received: {text!r}")
            return cls("specific", versions=tuple(sorted(set(versions))))
        if kind == "all" and not argument:
            return cls("all")
        raise ValueError(f"Expected latest[:N], specific:V,… or all. Received: {text!r}")

    @property
    def most(self):
        """How many versions are served at most."""
        return self.num_versions if self.kind == "latest" else len(self.versions) or float("inf")

    def candidates(self, versions):
        """The versions (highest first) worth loading, in the order to try them."""
        if self.kind == "specific":
            return [v for v in versions if v in self.versions]
        return versions
