#!/usr/bin/env python3
"""Where a LeNet training step goes on the CPU, and which Paddle execution modes change it.

Prints, for paddle.vision's LeNet at one thread on random data (the ``lenet-step``
worker of bench/workers.py, each mode in a fresh process, because both the flag
and static mode are process-wide):

1. the forward time of each layer of ``features`` (the two convolutions dominate);
2. training images/s of a plain dygraph step loop (forward, backward, Momentum);
3. the same step with ``FLAGS_use_mkldnn`` set (dygraph does not switch to oneDNN kernels);
4. a static program of the same network (``paddle.enable_static``), without and with
   ``FLAGS_use_mkldnn`` (Paddle 3.3.1 raises ``dnnl::error`` in a oneDNN backward kernel:
   the row then says "failed" and names the kernel).

These are the figures behind the "second look" in docs/benchmarks.md; the script writes nothing.

    python bench/lenet_step.py [--batch-size 64] [--steps 200]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.run import worker  # noqa: E402

MODES = ("layers", "dygraph", "dygraph-onednn", "static", "static-onednn")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per mode; default 200")
    args = parser.parse_args(argv)
    for mode in MODES:
        result = worker("lenet-step", mode=mode, batch_size=args.batch_size, steps=args.steps, threads=1)
        if "layers_ms" in result:
            for name, ms in result["layers_ms"]:
                print(f"forward {name:<14} {ms:8.3f} ms at batch {args.batch_size}")
        elif "failed" in result:
            print(f"{mode:<15} failed: {result['failed']}")
        else:
            print(f"{mode:<15} {result['images_per_second']:8.0f} training images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
