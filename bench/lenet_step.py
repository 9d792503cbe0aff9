#!/usr/bin/env python3
"""Where a LeNet training step goes on the CPU, and which Paddle execution modes change it.

Prints, for paddle.vision's LeNet at one thread on random data:

1. the forward time of each layer of ``features`` (the two convolutions dominate);
2. training images/s of a plain dygraph step loop (forward, backward, Momentum);
3. the same step with ``FLAGS_use_mkldnn`` set (dygraph does not switch to oneDNN kernels);
4. a static program of the same network (``paddle.enable_static``), without and with
   ``FLAGS_use_mkldnn`` (Paddle 3.3.1 raises ``dnnl::error`` in a oneDNN backward kernel:
   the row then says "failed" and the reason).

Each mode runs in a fresh process, because both flags and static mode are
process-wide. These are the figures behind the "second look" in
docs/benchmarks.md; the script writes nothing.

    python bench/lenet_step.py [--batch-size 64] [--steps 200]
"""

import argparse
import json
import os
import subprocess
import sys

MODES = ("layers", "dygraph", "dygraph-onednn", "static", "static-onednn")

STEP = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
import paddle

mode, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode.endswith("onednn"):
    paddle.set_flags({"FLAGS_use_mkldnn": True})
paddle.seed(0)
x_np = np.random.rand(batch, 1, 28, 28).astype("float32")
y_np = np.random.randint(0, 10, (batch, 1)).astype("int64")

def timed(fn, n):
    for _ in range(min(10, n)):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start

if mode == "layers":
    net = paddle.vision.models.LeNet()
    h, rows = paddle.to_tensor(x_np), []
    with paddle.no_grad():
        for name, layer in net.features.named_children():
            seconds = timed(lambda: layer(h), steps)
            rows.append([f"{name} {type(layer).__name__}", round(seconds / steps * 1e3, 3)])
            h = layer(h)
    print(json.dumps({"layers_ms": rows}))
elif mode.startswith("dygraph"):
    net = paddle.vision.models.LeNet()
    opt = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=net.parameters(), weight_decay=1e-4)
    loss_fn = paddle.nn.CrossEntropyLoss()
    x, y = paddle.to_tensor(x_np), paddle.to_tensor(y_np)
    def step():
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
    seconds = timed(step, steps)
    print(json.dumps({"images_per_second": steps * batch / seconds}))
else:
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [None, 1, 28, 28], "float32")
        y = paddle.static.data("y", [None, 1], "int64")
        loss = paddle.nn.functional.cross_entropy(paddle.vision.models.LeNet()(x), y)
        paddle.optimizer.Momentum(0.01, momentum=0.9, weight_decay=1e-4).minimize(loss)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    try:
        seconds = timed(lambda: exe.run(main, feed={"x": x_np, "y": y_np}, fetch_list=[loss]), steps)
    except Exception as error:  # the point of the row: report how this mode fails
        print(json.dumps({"failed": f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120]}"}))
    else:
        print(json.dumps({"images_per_second": steps * batch / seconds}))
"""


def run_mode(mode: str, batch: int, steps: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", STEP, mode, str(batch), str(steps)], env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"failed": f"exit code {done.returncode}: {(done.stderr.strip().splitlines() or ['no output'])[-1][:120]}"}
    result = json.loads(lines[-1])
    if "failed" in result:
        # Paddle names the kernel that failed in a glog warning, not in the exception.
        why = [line.split("] ", 1)[-1] for line in done.stderr.splitlines() if "raises an exception" in line]
        result["failed"] += f" ({why[0]})" if why else ""
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per mode; default 200")
    args = parser.parse_args(argv)
    for mode in MODES:
        result = run_mode(mode, args.batch_size, args.steps)
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
