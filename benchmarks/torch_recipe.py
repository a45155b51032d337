"""train.py's default recipe written in plain PyTorch (eager, CPU), for benchmarks/vs_pytorch.py.

    python benchmarks/torch_recipe.py --epochs 50 --seed 1      # prints one JSON line
    python benchmarks/torch_recipe.py --members 4 --threads 0   # four, one after another

What it mirrors, and how:
  data        MNIST-1D from the `mnist1d` package, in the order TFDS stores it (examples sorted
              by the MD5 of split name + index, as TFDS's writer does), then the validation
              10% carved out by `numpy.random.default_rng(seed).permutation`, as tfnn.data does;
              `--digest` prints a hash of the splits that vs_pytorch.py compares with tfnn's.
  model       inputs standardized by the mean and standard deviation of all training values
              (inside the model, as tfnn's CNN does), then the spec's layers: CB = convolution
              without bias (padding "same", He-normal truncated at ±2σ) → batch norm (momentum
              0.99 in Keras's sense, ε 1e-3) → ReLU; M = max pooling; G = global average
              pooling; D = dropout; then a Glorot-uniform dense layer to 10 logits, bias 0.
  training    Adam (β 0.9/0.999, ε 1e-7) at 3e-3 with cosine decay to 3e-5 over all steps,
              batch 100 reshuffled every epoch, softmax NLL with label smoothing 0.1, 50 epochs,
              a validation pass after every epoch (as Model.fit does), one CPU thread.
  evaluation  loss and accuracy on validation and test, in inference mode.

Known small differences: Adam adds ε to √v̂ (Keras adds it to √v), PyTorch's batch norm keeps
the unbiased batch variance in its running average (Keras the biased one), and no expected
calibration error is computed during training.

The time of the training loop (all epochs with their validation passes) is printed as
"fit_seconds" in the JSON line.
"""

import argparse
import hashlib
import json
import math
import sys
import time

import numpy as np

# train.py's default --cnn.
SPEC = (
    "CB-32-5-1-same,CB-32-5-1-same,M-2-2,CB-64-3-1-same,CB-64-3-1-same,M-2-2,CB-64-3-1-same,G,D-0.3"
)
CLASSES = 10


def tfds_order(n, split):
    """The order in which TFDS stores examples 0..n-1 of `split`: sorted by MD5(split + index)."""

    def key(i):
        return int(hashlib.md5(f"{split}{i}".encode()).hexdigest(), 16)

    return np.array(sorted(range(n), key=key))


def splits(seed, validation_fraction=0.1, cache=None):
    """{"train", "validation", "test"}: (float32 signals, int64 labels), as tfnn.data.load gives.

    `cache` is a pickle file for mnist1d's `get_dataset` (made on first use); None generates
    the data in memory.
    """
    from mnist1d.data import get_dataset, get_dataset_args, make_dataset

    args = get_dataset_args()
    if cache:
        data = get_dataset(args, path=cache, download=False, verbose=False)
    else:
        data = make_dataset(args)
    train, test = tfds_order(len(data["y"]), "train"), tfds_order(len(data["y_test"]), "test")
    x, y = data["x"][train].astype(np.float32), data["y"][train].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    held_out = max(1, int(round(validation_fraction * len(y))))
    validation, train = order[:held_out], order[held_out:]
    return {
        "train": (x[train], y[train]),
        "validation": (x[validation], y[validation]),
        "test": (data["x_test"][test].astype(np.float32), data["y_test"][test].astype(np.int64)),
    }


def digest(train, validation, test):
    """SHA-256 of the three (x, y) splits' bytes, in a fixed order and dtype."""
    h = hashlib.sha256()
    for x, y in (train, validation, test):
        h.update(np.ascontiguousarray(x, np.float32).tobytes())
        h.update(np.ascontiguousarray(y, np.int64).tobytes())
    return h.hexdigest()


def network(spec, train_x):
    """The spec's CNN for signals [B, T], standardizing its inputs first, ending in logits."""
    import torch
    from torch import nn

    values = np.asarray(train_x, np.float64)
    mean, std = float(values.mean()), max(float(values.std()), 1e-7)  # Keras's ε floor

    class Standardize(nn.Module):
        def forward(self, x):
            return ((x - mean) / std).unsqueeze(1)  # [B, T] → [B, 1, T], channels first

    def he_normal(weight):
        fan_in = weight[0].numel()  # input channels × kernel width
        stddev = math.sqrt(2.0 / fan_in) / 0.87962566103423978  # truncated at ±2σ
        nn.init.trunc_normal_(weight, 0.0, stddev, -2 * stddev, 2 * stddev)

    layers, channels = [Standardize()], 1
    for part in spec.split(","):
        kind, *fields = part.split("-")
        if kind == "CB":
            filters, kernel, stride = map(int, fields[:3])
            if stride != 1 or fields[3] != "same":
                raise ValueError(f"{part}: only stride 1 with 'same' padding is written here")
            conv = nn.Conv1d(channels, filters, kernel, padding="same", bias=False)
            he_normal(conv.weight)
            layers += [conv, nn.BatchNorm1d(filters, eps=1e-3, momentum=0.01), nn.ReLU()]
            channels = filters
        elif kind == "M":
            layers.append(nn.MaxPool1d(*map(int, fields)))
        elif kind == "G":
            layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten()]
        elif kind == "D":
            layers.append(nn.Dropout(float(fields[0])))
        else:
            raise ValueError(f"{part}: layer kind {kind!r} is not written here")
    output = nn.Linear(channels, CLASSES)
    nn.init.xavier_uniform_(output.weight)
    nn.init.zeros_(output.bias)
    return nn.Sequential(*layers, output).to(torch.float32)


def evaluate(model, loss_fn, x, y, batch_size):
    """{"loss", "accuracy"} of `model` in inference mode on (x, y) tensors."""
    import torch

    model.eval()
    loss = correct = 0.0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size])
            gold = y[start : start + batch_size]
            loss += loss_fn(logits, gold).item() * len(gold)
            correct += (logits.argmax(1) == gold).sum().item()
    return {"loss": loss / len(y), "accuracy": correct / len(y)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--learning_rate_final", type=float, default=3e-5)
    parser.add_argument("--label_smoothing", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads; 0: PyTorch's")
    parser.add_argument(
        "--members", type=int, default=1, help="networks trained one after another (seeds +i)"
    )
    parser.add_argument("--data_cache", default=None, help="mnist1d's pickle (default: generate)")
    parser.add_argument("--digest", action="store_true", help="print the splits' hash and exit")
    args = parser.parse_args(argv)

    data = splits(args.seed, cache=args.data_cache)
    if args.digest:
        print(json.dumps({"seed": args.seed, "digest": digest(*data.values())}))
        return

    import torch

    if args.threads > 0:  # 0: PyTorch's default (a thread per core)
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    members = [train_one(args, data, args.seed + i) for i in range(args.members)]
    result = {**members[0], "fit_seconds": time.perf_counter() - start, "torch": torch.__version__}
    if args.members > 1:  # as tfnn's init ensemble: member i has seed + i − 1
        result["members"] = members
    print(json.dumps(result))


def train_one(args, data, seed):
    """One network trained with `seed`: {"val", "test", "fit_seconds", "epochs"}."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x_train, y_train = (torch.from_numpy(a) for a in data["train"])
    validation = [torch.from_numpy(a) for a in data["validation"]]
    test = [torch.from_numpy(a) for a in data["test"]]

    model = network(SPEC, data["train"][0])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, eps=1e-7)
    steps_per_epoch = math.ceil(len(y_train) / args.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=steps_per_epoch * args.epochs, eta_min=args.learning_rate_final
    )

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(y_train))
        loss_sum = correct = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            logits = model(x_train[batch])
            loss = loss_fn(logits, y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(batch)
            correct += (logits.argmax(1) == y_train[batch]).sum().item()
        scores = evaluate(model, loss_fn, *validation, args.batch_size)
        print(
            f"epoch {epoch}/{args.epochs}: loss {loss_sum / len(y_train):.4f}, "
            f"accuracy {correct / len(y_train):.4f}, val_loss {scores['loss']:.4f}, "
            f"val_accuracy {scores['accuracy']:.4f}",
            file=sys.stderr,
            flush=True,
        )
    return {
        "val": evaluate(model, loss_fn, *validation, args.batch_size),
        "test": evaluate(model, loss_fn, *test, args.batch_size),
        "fit_seconds": time.perf_counter() - start,
        "epochs": args.epochs,
    }


if __name__ == "__main__":
    main()
