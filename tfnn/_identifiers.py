"""The one rule of tfnn's `get` functions (activations, initializers, regularizers, constraints).

A name gives tfnn's object wherever tfnn has one for it: under tfnn's own names, its class
or function name, its registered name ("tfnn>L2"), and every name Keras gives the twin of
the same name ("l2" and "L2" → tfnn's L2, "max_norm" → tfnn's MaxNorm). Any other name
Keras knows gives Keras's object ("orthogonal_regularizer", "zeros", "gelu"); a name neither
knows (nor registered with Keras) is a ValueError listing the names allowed. Anything but a
name (an instance, a config, None) goes to Keras's `get`, which resolves tfnn's registered
configs to tfnn's classes.
"""

import functools
import importlib

import keras


@functools.cache
def _keras_names(kind):
    """{name: object} of the names `keras.<kind>.get` resolves (its module's table).

    keras.src: the public modules hold no table of the names their `get` takes."""
    return dict(importlib.import_module(f"keras.src.{kind}").ALL_OBJECTS_DICT)


@functools.cache
def _tfnn_names(kind, own):
    """{name: tfnn object} for the (name, object) pairs `own`, with every alias above."""
    keras_names = _keras_names(kind)
    names = {}
    for name, tfnn_object in own:
        aliases = {name, tfnn_object.__name__}
        twins = [keras_names[a] for a in aliases if a in keras_names]
        aliases |= {k for k, v in keras_names.items() if any(v is twin for twin in twins)}
        aliases.add(keras.saving.get_registered_name(tfnn_object))
        names.update(dict.fromkeys(aliases, tfnn_object))
    return names


def get(identifier, *, kind, own):
    """The object `identifier` stands for, by the rule above.

    Args:
        identifier: a name, or anything `keras.<kind>.get` takes.
        kind: "activations", "initializers", "regularizers" or "constraints".
        own: tfnn's {name: class or function} of that kind.

    Returns:
        A class named is instantiated with its defaults; a function is returned as it is.

    Raises:
        ValueError: a name neither tfnn nor Keras knows, naming it and the names allowed.
    """
    if not isinstance(identifier, str):
        return getattr(keras, kind).get(identifier)
    tfnn_names = _tfnn_names(kind, tuple(own.items()))
    if identifier in tfnn_names:
        found = tfnn_names[identifier]
        return found() if isinstance(found, type) else found
    if identifier in _keras_names(kind) or identifier in keras.saving.get_custom_objects():
        return getattr(keras, kind).get(identifier)
    allowed = sorted({*tfnn_names, *_keras_names(kind)}, key=str.lower)
    raise ValueError(
        f"Expected the name of one of tfnn's or Keras's {kind}: {', '.join(allowed)}. "
        f"Received: identifier={identifier!r}"
    )
