#!/usr/bin/env python3
"""Train a paddle.vision model: ``python train.py --model resnet50 --dataset cifar10 --gpu``.

A thin shim over ``hapi_runner.cli``; ``python train.py --help`` lists the flags.
"""

import sys

from hapi_runner.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
