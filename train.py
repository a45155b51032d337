"""Train a network with the lecture's recipe: `python train.py --help` lists the flags."""

from tfnn.cli.train import command

if __name__ == "__main__":
    command()
