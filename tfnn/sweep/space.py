"""The search space of a sweep: which options it searches and over what, checked against the
recipe's options before anything runs or is written. No TensorFlow or Optuna import.

    NAME=LOW:HIGH        uniform over [LOW, HIGH]          dropout=0:0.6
    NAME=LOW:HIGH:log    log-uniform over [LOW, HIGH]      l2=1e-6:1e-2:log
    NAME=A,B,C           one of the choices                label_smoothing=0,0.1,0.2

NAME is any train.py option that changes the results (not an output option such as logdir,
nor ensemble: a trial is one model; nor dataset, validation_fraction or seed: every trial is
scored on the same validation examples). An int option's range draws ints. An option taking
several values (hidden_layers) takes choices only, each with its values joined by "+":
hidden_layers=64,128+128; so does an augmentation of several parts, "none" for none:
augment=none,shift=10+stretch=0.1. Each bound and each choice must be a value the option accepts
with the options fixed beside it (`tfnn.recipe.options.Options`), so an option that has no
effect with them (dropout with model='cnn') is refused.
"""

import dataclasses
import math

from tfnn.recipe import options as recipe_options

# Options that choose the examples a trial is scored on (the seed draws the validation
# split): searched, trials scored on other examples would be ranked against each other.
SCORED_ON = ("dataset", "validation_fraction", "seed")
# Options a sweep never searches: where results go, ensembles (a trial is one model), and
# what the trials are scored on.
NOT_SEARCHED = (
    *recipe_options.OUTPUT_ONLY,
    "ensemble",
    "ensemble_kind",
    "checkpoint_average",
    *SCORED_ON,
)


@dataclasses.dataclass(frozen=True)
class Range:
    """A uniform (or, with `log`, log-uniform) range [low, high] of an int or float option."""

    low: float
    high: float
    log: bool = False

    def suggest(self, trial, name):
        """The value an Optuna `trial` draws for option `name`."""
        if isinstance(self.low, int):
            return trial.suggest_int(name, self.low, self.high, log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def as_dict(self):
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclasses.dataclass(frozen=True)
class Choices:
    """The values an option takes in turn (tuples for an option of several values)."""

    values: tuple

    def suggest(self, trial, name):
        # Optuna's choices are plain scalars: a tuple is drawn as its "+"-joined text.
        drawn = trial.suggest_categorical(name, [_scalar(v) for v in self.values])
        if isinstance(self.values[0], tuple):
            return tuple(int(v) for v in drawn.split("+"))
        return drawn

    def as_dict(self):
        return {"choices": [list(v) if isinstance(v, tuple) else v for v in self.values]}


def _scalar(value):
    return "+".join(map(str, value)) if isinstance(value, tuple) else value


def _field(name):
    fields = {field.name: field for field in recipe_options.fields()}
    if name in SCORED_ON:
        raise ValueError(
            f"Expected {', '.join(SCORED_ON)} fixed in a sweep (they choose the examples "
            f"every trial is scored on). Received: {name!r} searched"
        )
    if name not in fields or name in NOT_SEARCHED:
        searchable = sorted(set(fields) - set(NOT_SEARCHED))
        raise ValueError(
            f"Expected a searched option of train.py's ({', '.join(searchable)}). "
            f"Received: {name!r}"
        )
    return fields[name]


def _value(field, text):
    """`text` as a value of option `field` (its flag's type)."""
    meta = field.metadata
    if meta["many"]:
        return tuple(meta["kind"](part) for part in text.split("+"))
    if meta["kind"] is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError  # parse_body's message names the option and the text refused
        return text.lower() == "true"
    return meta["kind"](text)


def parse_term(text):
    """ "NAME=..." → (NAME, its `Range` or `Choices`), unchecked against the options.

    Raises:
        ValueError: a malformed term or an unknown option, naming it.
    """
    name, equals, body = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise ValueError(
            f"Expected NAME=LOW:HIGH, NAME=LOW:HIGH:log or NAME=A,B,C. Received: {text!r}"
        )
    return name, parse_body(name, body)


def parse_body(name, body):
    """The `Range` or `Choices` that `body` ("LOW:HIGH", "LOW:HIGH:log", "A,B,C", or a list
    of choices from Python) gives option `name`."""
    field = _field(name)
    meta = field.metadata

    def malformed(expected):
        return ValueError(f"Expected {expected} for {name}. Received: {name}={body!r}")

    if isinstance(body, (list, tuple)):
        nested = [v for v in body if isinstance(v, (list, tuple))]
        if nested and not meta["many"]:  # [0.1, [0.2]]: a choice of one value is not a list
            raise malformed(f"a list of single values ({name} takes one value)")
        body = ",".join(str(_scalar(tuple(v) if isinstance(v, list) else v)) for v in body)
    if not isinstance(body, str):
        raise malformed("'LOW:HIGH', 'LOW:HIGH:log', 'A,B,C' or a list of choices")
    parts = body.split(":")
    if len(parts) == 1:
        texts = [t.strip() for t in body.split(",")]
        if not all(texts):
            raise malformed("choices A,B,C, none empty")
        try:
            values = tuple(_value(field, t) for t in texts)
        except ValueError:
            raise malformed(f"choices of type {meta['kind'].__name__}") from None
        if len(set(values)) != len(values):
            raise malformed("distinct choices")
        return Choices(values)
    if meta["many"] or meta["kind"] not in (int, float):
        raise malformed("choices A,B,C (a range needs a number option)")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() != "log"):
        raise malformed("LOW:HIGH or LOW:HIGH:log")
    try:
        low, high = (meta["kind"](p.strip()) for p in parts[:2])
    except ValueError:
        raise malformed(f"LOW and HIGH of type {meta['kind'].__name__}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise malformed("finite LOW and HIGH")
    if low > high:
        raise malformed("LOW <= HIGH")
    log = len(parts) == 3
    if log and low <= 0:
        raise malformed("LOW > 0 for a log range (log 0 is -inf)")
    return Range(low, high, log)


def check(search, fixed):
    """Checks the `search` ({name: `Range` or `Choices`}) against the `fixed` options: none
    both searched and fixed, a trial a single model, and each bound or choice an `Options`
    value beside the fixed ones. Returns `search`.

    Raises:
        ValueError: one line naming the option and the value refused.
    """
    if not search:
        raise ValueError("Expected at least one searched option. Received: search={}")
    both = sorted(set(search) & set(fixed))
    if both:
        raise ValueError(
            f"Expected each option either searched or fixed. Received: {', '.join(both)} both"
        )
    base = recipe_options.Options(**fixed)  # a bad fixed option is refused as train.py does
    if base.ensemble > 1:
        raise ValueError(
            "Expected ensemble 1 in a sweep (each trial is one model). "
            f"Received: ensemble={base.ensemble}"
        )
    _one_device_per_trial(base)
    for name, space in search.items():
        values = space.values if isinstance(space, Choices) else (space.low, space.high)
        for value in values:
            try:
                _one_device_per_trial(recipe_options.Options(**{**fixed, name: value}))
            except ValueError as error:
                raise ValueError(f"search {name}: {error}") from None
    return search


def _one_device_per_trial(options):
    """Refuses logical CPU devices: they are made where a process starts, and a trial runs in
    a pool worker or the sweep's process, neither made with them (each trial would fail)."""
    if options.cpu_devices > 1:
        raise ValueError(
            "Expected cpu_devices 0 or 1 in a sweep (its trials run in processes without "
            f"logical CPU devices). Received: cpu_devices={options.cpu_devices}"
        )


def parse(terms, fixed):
    """The checked search space of `terms`: CLI strings "NAME=..." (a list or tuple, or one
    string) or Python's {name: "LOW:HIGH" | "LOW:HIGH:log" | "A,B,C" | [choices]}; see the
    module's docstring.

    Raises:
        ValueError: a malformed term, an unknown option, LOW > HIGH, a bound the option does
            not accept, a log range reaching 0, an option both searched and fixed or twice
            searched, or one without effect beside the fixed ones.
    """
    if isinstance(terms, str):  # one term: "dropout=0:0.5"
        terms = [terms]
    if not isinstance(terms, (dict, list, tuple)) or (
        not isinstance(terms, dict) and not all(isinstance(t, str) for t in terms)
    ):
        raise ValueError(
            "Expected search as {option: space}, a term 'NAME=...' or a list of such terms. "
            f"Received: search={terms!r}"
        )
    pairs = terms.items() if isinstance(terms, dict) else map(parse_term, terms)
    search = {}
    for name, body in pairs:
        space = body if isinstance(body, (Range, Choices)) else parse_body(name, body)
        if name in search:
            raise ValueError(f"Expected each option searched once. Received: {name} twice")
        search[name] = space
    return check(search, fixed)
