"""A pytest plugin tools/mutation.py loads into mutmut's test runs: mutated functions keep
their argument lists for `inspect.getfullargspec`.

mutmut replaces each mutated function by a `(*args, **kwargs)` trampoline that carries the
original only as `__wrapped__`, which `inspect.signature` follows and `getfullargspec` does
not. Keras builds a layer's default config in `Operation.__new__` from both, and on a layer
whose `__init__` is such a trampoline (every tfnn layer with an `__init__` of its own) fails
with IndexError before any test of it runs. Setting `__signature__`, which both read, to the
original function's signature gives them the original's arguments again.
"""

import inspect

from mutmut.mutation import trampoline

_wrap_in_trampoline = trampoline.wrap_in_trampoline


def wrap_in_trampoline(mutants_dict, is_classmethod=False):
    decorate = _wrap_in_trampoline(mutants_dict, is_classmethod)

    def keeping_the_signature(function):
        wrapper = decorate(function)
        wrapper.__signature__ = inspect.signature(function)
        return wrapper

    return keeping_the_signature


# Before any test module imports a mutated module, whose first line imports this name.
trampoline.wrap_in_trampoline = wrap_in_trampoline
