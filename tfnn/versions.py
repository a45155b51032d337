"""Version numbers, as TensorFlow Serving reads them from a model's folder names.

    <base_path>/<version>/saved_model.pb

TensorFlow Serving parses a version folder's name as an int64: ASCII decimal digits, leading
zeros allowed ("0012" is version 12), a value from 0 to 2^63 - 1. Anything else (a sign,
spaces, "1.0", "v2", other scripts' digits such as "١٢" or "²") is not a version. The export
(`tfnn.export.versions`), the server's repository, its version policy and its REST paths all
read versions with `parse_version`. No TensorFlow import: tfnn-serve checks its flags first.
"""

__all__ = ["MAX_VERSION", "parse_version"]

MAX_VERSION = 2**63 - 1  # TensorFlow Serving's version is an int64
_MAX_DIGITS = len(str(MAX_VERSION))


def parse_version(text):
    """The version `text` names, as an int; None unless ASCII decimal digits within int64."""
    if not (isinstance(text, str) and text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:  # also spares int() a 5,000-digit name
        return None
    version = int(digits)
    return version if version <= MAX_VERSION else None
