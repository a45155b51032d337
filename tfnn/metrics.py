"""Calibration: the expected calibration error (ECE), the measure behind D7's comparison.

A model is calibrated when its confidence is its accuracy: of the predictions
made with confidence 0.8, 80% are right. ECE measures the gap. With the
confidence c = max_k p_k of each prediction, the interval (0, 1] cut into M
equal-width bins B_1 … B_M, and N predictions,

    ECE = Σ_b (|B_b| / N) · |acc(B_b) − conf(B_b)|
        = Σ_b |Σ_{i∈B_b} (1[ŷ_i = y_i] − c_i)| / N

(Naeini et al. 2015; Guo et al. 2017 use M = 15). The second form is what the
metric accumulates: per bin, the count, the summed confidence and the number
correct, so batches add up to the ECE of the whole set.
"""

import keras as _keras
import tensorflow as _tf

from tfnn import validation

__all__ = ["ExpectedCalibrationError"]


@_keras.saving.register_keras_serializable(package="tfnn")
class ExpectedCalibrationError(_keras.metrics.Metric):
    """ECE of a classifier's predictions, accumulated over batches.

    Args:
        num_bins: M, the number of equal-width confidence bins.
        from_logits: whether predictions are logits (tfnn's models output
            logits) or probabilities. One column is a binary outcome's logit
            z (or its probability σ(z)), read as the two classes (1 − p, p).
        name: the metric's name.
        dtype: the dtype of the metric's state.

    Call arguments:
        y_true: class indices [B] (or [B, 1]), or gold distributions [B, K]
            (label smoothing, mixup) whose most likely class counts as the label.
        y_pred: logits or probabilities [B, K] or [B, 1].
        sample_weight: optional per-example weights [B].
    """

    def __init__(self, num_bins=15, from_logits=True, name="ece", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_bins = validation.integer("num_bins", num_bins, low=1)
        self.from_logits = bool(from_logits)
        self.counts, self.confidence, self.correct = (
            self.add_variable(shape=(num_bins,), initializer="zeros", name=state)
            for state in ("counts", "confidence", "correct")
        )

    def _probabilities(self, y_pred):
        y_pred = _tf.cast(y_pred, _tf.float32)
        if y_pred.shape[-1] == 1:
            p = _tf.sigmoid(y_pred) if self.from_logits else y_pred
            return _tf.concat([1.0 - p, p], axis=-1)
        return _tf.nn.softmax(y_pred) if self.from_logits else y_pred

    def update_state(self, y_true, y_pred, sample_weight=None):
        columns = y_pred.shape[-1]
        probabilities = self._probabilities(y_pred)
        y_true = _tf.convert_to_tensor(y_true)
        if columns == 1:  # binary gold: 0/1, or smoothed towards 1/2
            labels = _tf.cast(_tf.reshape(_tf.cast(y_true, _tf.float32), [-1]) > 0.5, _tf.int64)
        elif y_true.shape.rank == 2 and y_true.shape[-1] == columns:
            labels = _tf.argmax(y_true, axis=-1)
        else:
            labels = _tf.cast(_tf.reshape(y_true, [-1]), _tf.int64)
        confidence = _tf.reduce_max(probabilities, axis=-1)
        correct = _tf.cast(_tf.equal(_tf.argmax(probabilities, axis=-1), labels), _tf.float32)
        weight = _tf.ones_like(confidence)
        if sample_weight is not None:
            weight = _tf.reshape(_tf.cast(sample_weight, _tf.float32), [-1]) * weight
        # Bin b holds c ∈ (b/M, (b + 1)/M]; c ≥ 1/K > 0 always.
        bins = _tf.clip_by_value(
            _tf.cast(_tf.math.ceil(confidence * self.num_bins), _tf.int32) - 1, 0, self.num_bins - 1
        )
        for state, value in (
            (self.counts, weight),
            (self.confidence, weight * confidence),
            (self.correct, weight * correct),
        ):
            state.assign_add(
                _tf.cast(_tf.math.unsorted_segment_sum(value, bins, self.num_bins), state.dtype)
            )

    def result(self):
        total = _tf.reduce_sum(self.counts)
        gap = _tf.reduce_sum(_tf.abs(self.correct - self.confidence))
        return _tf.math.divide_no_nan(gap, total)

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "from_logits": self.from_logits}
