"""Model builders: each returns a Keras model of tfnn components that outputs logits.

tfnn.models.mlp.mlp(...)      the multi-layer perceptron (A2)
tfnn.models.cnn.cnn(...)      a CNN from an NPFL114 spec string (F5)
tfnn.models.spec.parse(...)   the spec parser (no TensorFlow needed)
"""

__all__ = []  # the package holds its submodules, no names of its own
