"""The training recipe as a library, one module per stage; `tfnn.train(**options)` runs it.

options.py    the options, validated once (no TensorFlow)
plan.py       facts settled once: objective, transforms, steps, devices
run.py        the run folder and its files
fit.py        build, compile and fit one model
ensembles.py  the members and ensembles of 1..N (D6)
evaluate.py   validation and test figures, Monte-Carlo dropout (D7), temperature scaling
train.py      the stages in order, through export and metrics.json
"""

__all__ = []  # the package holds its submodules, no names of its own
