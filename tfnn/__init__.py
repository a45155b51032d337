"""tfnn: the lecture 'Training Neural Networks II' as Keras 3 components.

Import the modules you need; each mirrors its Keras namesake:

    from tfnn import activations, constraints, initializers, losses, metrics, regularizers
    from tfnn.layers import Dense, Dropout, GaussianNoise, PReLU, Activation
    from tfnn.models.ensemble import ensemble, monte_carlo_dropout

`tfnn.export` writes SavedModels that `tfnn-serve` (tfnn.serving) and TensorFlow
Serving serve; `tfnn.distribute` names the tf.distribute strategies train.py uses.
"""

__version__ = "0.1.0"
