"""tfnn: the lecture 'Training Neural Networks II' as Keras 3 components.

Import the modules you need; each mirrors its Keras namesake:

    from tfnn import activations, constraints, initializers, losses, regularizers
    from tfnn.layers import Dense, Dropout, GaussianNoise, PReLU, Activation
"""

__version__ = "0.1.0"
