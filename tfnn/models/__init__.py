"""Model builders: each returns a Keras model of tfnn components that outputs logits."""

from tfnn.models.mlp import mlp

__all__ = ["mlp"]
