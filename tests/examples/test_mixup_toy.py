import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mixup_makes_the_toy_classifier_less_confident_between_the_classes(tmp_path):
    """D5: the lecture's figure; mixup's probabilities change gradually, not in a jump."""
    output = tmp_path / "mixup_toy.png"
    confidence = load("mixup_toy").main(["--epochs", "60", "--output", str(output)])
    assert output.stat().st_size > 0
    without, with_mixup = confidence.values()
    assert without > 0.97
    assert with_mixup < without - 0.03
