import subprocess
import sys

import pytest

from tfnn.cli import args as cli_args

BAD = [
    (["--dropout", "1.0"], "--dropout"),
    (["--dropout", "-0.1"], "--dropout"),
    (["--learning_rate", "0"], "--learning_rate"),
    (["--learning_rate", "nan"], "--learning_rate"),
    (["--batch_size", "0"], "--batch_size"),
    (["--epochs", "-3"], "--epochs"),
    (["--hidden_layers", "100", "0"], "--hidden_layers"),
    (["--l2", "-1e-4"], "--l2"),
    (["--label_smoothing", "1.5"], "--label_smoothing"),
    (["--clip", "0"], "--clip"),
    (["--clip_mode", "elementwise"], "--clip_mode"),
    (["--optimizer", "lbfgs"], "--optimizer"),
    (["--activation", "softplus"], "--activation"),
    (["--init", "orthogonal"], "--init"),
    (["--validation_fraction", "1"], "--validation_fraction"),
    (["--model_name", "../escape"], "--model_name"),
    (["--model_name", "a/b"], "--model_name"),
    (["--model_name", ".."], "--model_name"),
    (
        ["--decay", "cosine", "--learning_rate", "0.01", "--learning_rate_final", "0.1"],
        "--learning_rate_final",
    ),
    (["--no_such_flag"], "unrecognized"),
    (["--model", "cnn", "--cnn", "C-16-5-x-same,F"], "'C-16-5-x-same'"),
    (["--model", "rnn"], "--model"),
    (["--augment", "tilt=3"], "'tilt'"),
    (["--augment", "flip=1"], "'flip=1'"),
    (["--augment", "rotate=200"], "'rotate=200'"),
    (["--augment", "shift=1.5"], "'shift=1.5'"),
    (["--mixup", "-1"], "--mixup"),
    (["--noise", "-0.1"], "--noise"),
    (["--ensemble", "0"], "--ensemble"),
    (["--ensemble_kind", "boosting"], "--ensemble_kind"),
    (["--ensemble", "3", "--ensemble_kind", "checkpoints", "--patience", "2"], "--patience"),
    (["--ensemble", "9", "--ensemble_kind", "checkpoints", "--epochs", "5"], "--ensemble"),
    (["--checkpoint_average", "median"], "--checkpoint_average"),
    (["--mc_dropout", "-1"], "--mc_dropout"),
]


@pytest.mark.parametrize("argv, flag", BAD)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_args.parse(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err, err


def test_flags_are_checked_without_importing_tensorflow(tmp_path):
    """Bad input is refused before any heavy work, and nothing is written."""
    script = (
        "import sys\nfrom tfnn.cli import args\ntry:\n    args.parse(['--dropout', '2'])\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.split() == ["2", "False", "False"]
    assert list(tmp_path.iterdir()) == []


def test_defaults_parse_and_name_the_export_after_the_dataset():
    args = cli_args.parse([])
    assert (args.dataset, args.model_name, args.export_dir) == (
        "mnist1d",
        "mnist1d",
        "saved_models",
    )
    assert cli_args.non_default(args) == []
    argv = ["--dataset", "digits", "--l2", "0.001", "--verbose", "0", "--logdir", "elsewhere"]
    assert cli_args.non_default(cli_args.parse(argv)) == [("dataset", "digits"), ("l2", 0.001)]
