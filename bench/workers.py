#!/usr/bin/env python3
"""The measurements bench/run.py makes outside train.py, one per fresh process.

    python -m bench.workers NAME '{"key": value, ...}'

prints one JSON object on its last line. The thread count is set through the
environment before anything imports Paddle or torch (``threads`` argument);
every worker warms up before it starts the clock. Names:

    pipeline-paddle  paddle.vision.transforms per sample on PIL images (as Cifar10 yields them)
    pipeline-hapi    hapi_runner's pipeline (batched or per-sample) over the same images
    train-metrics    LeNet epochs through paddle.Model.fit with and without training metrics
    lenet-step       LeNet per-layer forward times, or training steps in dygraph or a static program (bench/lenet_step.py)
    onnxruntime      an ONNX export evaluated with onnxruntime
    torch-eval       a plain-torch ResNet-50 forward pass (no torchvision), eval mode
    torch-train      plain-torch LeNet / ResNet-18 / ResNet-50 training steps (no torchvision)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _cifar_like(count: int, seed: int = 0):
    """uint8 HWC images and labels shaped like Cifar10."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count)


def _drain(loader, warmup_batches: int = 2):
    """(images, seconds) for one pass over ``loader``, the first batches untimed."""
    seen, started = 0, None
    for i, (x, _) in enumerate(loader):
        if i == warmup_batches:
            started, seen = time.perf_counter(), 0
        seen += len(x)
    return seen, time.perf_counter() - started


def pipeline_paddle(count=4096, batch_size=64, **_):
    """Cifar10's training transforms per sample through paddle.vision.transforms (PIL backend)."""
    import paddle
    import paddle.vision.transforms as T
    from PIL import Image

    images, labels = _cifar_like(count)

    class PilCifar(paddle.io.Dataset):  # what paddle.vision.datasets.Cifar10(backend='pil') yields
        def __init__(self):
            super().__init__()
            self.images = [Image.fromarray(im) for im in images]
            self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                        T.Normalize(CIFAR_MEAN, CIFAR_STD)])

        def __len__(self):
            return count

        def __getitem__(self, i):
            return self.transform(self.images[i]), labels[i:i + 1]

    loader = paddle.io.DataLoader(PilCifar(), batch_size=batch_size, shuffle=True, num_workers=0)
    seen, seconds = _drain(loader)
    return {"images_per_second": seen / seconds}


def pipeline_hapi(count=4096, batch_size=64, pipeline="batched", **_):
    """hapi_runner's loader over the same images with the same crop, flip and normalisation."""
    import numpy as np

    from hapi_runner.datasets import DATASETS, BatchTransform, ImageDataset, make_loader

    images, labels = _cifar_like(count)
    transform = BatchTransform(CIFAR_MEAN, CIFAR_STD, augment="crop-flip")
    data = ImageDataset(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels, [str(i) for i in range(10)],
                        DATASETS["cifar10"], transform)
    seen, seconds = _drain(make_loader(data, batch_size, shuffle=True, pipeline=pipeline))
    return {"images_per_second": seen / seconds}


def train_metrics(data_dir="/usr/share/datasets/fashion-mnist", epochs=1, metrics=True, **_):
    """LeNet on real Fashion-MNIST through paddle.Model.fit, prepared with or without Accuracy."""
    import paddle

    from hapi_runner.datasets import load_dataset, make_loader

    paddle.seed(0)
    train = load_dataset("fashion-mnist", "train", data_dir, download=False)
    loader = make_loader(train, 64, shuffle=True)
    net = paddle.vision.models.LeNet()
    model = paddle.Model(net, paddle.static.InputSpec([None, 1, 28, 28], "float32", "image"),
                         paddle.static.InputSpec([None, 1], "int64", "label"))
    opt = paddle.optimizer.Momentum(0.01, 0.9, parameters=net.parameters(), weight_decay=paddle.regularizer.L2Decay(1e-4))
    model.prepare(opt, paddle.nn.CrossEntropyLoss(), paddle.metric.Accuracy(topk=(1, 5)) if metrics else None)

    class Timer(paddle.callbacks.Callback):
        seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = Timer()
    cpu = time.process_time()
    model.fit(loader, epochs=epochs, verbose=0, callbacks=[timer])
    cpu = time.process_time() - cpu
    # CPU time as well as wall time: on one thread it is what the work costs,
    # even when other processes share the machine.
    return {"train_seconds": sum(timer.seconds), "cpu_seconds": cpu,
            "images_per_second": len(train) * epochs / sum(timer.seconds)}


def _timed(fn, steps: int) -> float:
    """Seconds for ``steps`` calls of ``fn``, after up to 10 untimed ones."""
    for _ in range(min(10, steps)):
        fn()
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - started


def lenet_step(mode="dygraph", batch_size=64, steps=200, **_):
    """paddle.vision's LeNet on random data: ``layers`` (forward ms per layer of ``features``),
    ``dygraph`` or ``static`` training steps (Momentum, L2 1e-4); a ``-onednn`` suffix sets FLAGS_use_mkldnn."""
    import numpy as np
    import paddle

    if mode.endswith("-onednn"):
        paddle.set_flags({"FLAGS_use_mkldnn": True})
    paddle.seed(0)
    x_np = np.random.rand(batch_size, 1, 28, 28).astype("float32")
    y_np = np.random.randint(0, 10, (batch_size, 1)).astype("int64")
    if mode == "layers":
        rows, h = [], paddle.to_tensor(x_np)
        with paddle.no_grad():
            for name, layer in paddle.vision.models.LeNet().features.named_children():
                rows.append([f"{name} {type(layer).__name__}", _timed(lambda: layer(h), steps) / steps * 1e3])
                h = layer(h)
        return {"layers_ms": rows}
    if mode.startswith("dygraph"):
        net = paddle.vision.models.LeNet()
        opt = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=net.parameters(), weight_decay=1e-4)
        loss_fn, x, y = paddle.nn.CrossEntropyLoss(), paddle.to_tensor(x_np), paddle.to_tensor(y_np)

        def step():
            loss_fn(net(x), y).backward()
            opt.step()
            opt.clear_grad()

        return {"images_per_second": steps * batch_size / _timed(step, steps)}
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [None, 1, 28, 28], "float32")
        y = paddle.static.data("y", [None, 1], "int64")
        loss = paddle.nn.functional.cross_entropy(paddle.vision.models.LeNet()(x), y)
        paddle.optimizer.Momentum(0.01, momentum=0.9, weight_decay=1e-4).minimize(loss)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    # Paddle names a failing kernel only in a glog line on stderr, not in the exception: keep that line.
    with tempfile.TemporaryFile("w+") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            seconds = _timed(lambda: exe.run(main, feed={"x": x_np, "y": y_np}, fetch_list=[loss]), steps)
        except Exception as error:  # the row's point is how this mode fails
            log.seek(0)
            kernel = [line.split("] ", 1)[-1].strip() for line in log if "raises an exception" in line]
            return {"failed": f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120]}"
                              + (f" ({kernel[0]})" if kernel else "")}
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return {"images_per_second": steps * batch_size / seconds}


def onnxruntime_eval(onnx_file, synthetic_size, seed=0, batch_size=64, threads=None, **_):
    """Top-1 and images/s of an ONNX export on the synthetic test split the run was evaluated on."""
    import numpy as np
    import onnxruntime as ort

    from hapi_runner.datasets import load_dataset

    data = load_dataset("synthetic", "test", synthetic_like="cifar10", synthetic_size=synthetic_size, seed=seed, augment=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or len(os.sched_getaffinity(0)))
    session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batches = [data.transform(data.images[i:i + batch_size]) for i in range(0, len(data), batch_size)]
    session.run(None, {name: batches[0]})  # warm-up
    started = time.perf_counter()
    logits = np.concatenate([session.run(None, {name: b})[0] for b in batches])
    seconds = time.perf_counter() - started
    return {"images_per_second": len(data) / seconds, "acc_top1": float((logits.argmax(1) == data.labels).mean()),
            "num_samples": len(data)}


# -- plain torch peers (no torchvision: it is not installable here) --------------

def _torch_models():
    import torch.nn as nn

    class LeNet(nn.Module):  # paddle.vision.models.LeNet, layer for layer
        def __init__(self, num_classes=10):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 6, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
                                          nn.Conv2d(6, 16, 5, 1, 0), nn.ReLU(), nn.MaxPool2d(2, 2))
            self.fc = nn.Sequential(nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, num_classes))

        def forward(self, x):
            return self.fc(self.features(x).flatten(1))

    class Basic(nn.Module):
        expansion = 1

        def __init__(self, cin, width, stride):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(cin, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                                      nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
            self.short = _shortcut(cin, width, stride)

        def forward(self, x):
            return (self.body(x) + self.short(x)).relu()

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, width, stride):
            super().__init__()
            out = width * 4
            self.body = nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                                      nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                                      nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out))
            self.short = _shortcut(cin, out, stride)

        def forward(self, x):
            return (self.body(x) + self.short(x)).relu()

    def _shortcut(cin, out, stride):
        if stride == 1 and cin == out:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    class ResNet(nn.Module):  # torchvision's layout: 7x7/2 stem and max-pool, as paddle.vision's default stem
        def __init__(self, block, layers, num_classes=10):
            super().__init__()
            stages, cin = [], 64
            for i, (width, count) in enumerate(zip((64, 128, 256, 512), layers)):
                for j in range(count):
                    stages.append(block(cin, width, 2 if (i > 0 and j == 0) else 1))
                    cin = width * block.expansion
            self.net = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
                                     nn.MaxPool2d(3, 2, 1), *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(cin, num_classes))

        def forward(self, x):
            return self.net(x)

    return {"lenet": (LeNet, (1, 28, 28)), "resnet18": (lambda: ResNet(Basic, (2, 2, 2, 2)), (3, 32, 32)),
            "resnet50": (lambda: ResNet(Bottleneck, (3, 4, 6, 3)), (3, 32, 32))}


def torch_train(model="resnet18", batch_size=64, steps=10, threads=None, **_):
    """Training steps of a plain-torch model (SGD momentum, cross-entropy), images/s after 3 warm-up steps."""
    import torch

    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(int(threads))
    build, shape = _torch_models()[model]
    net = build()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y = torch.randn(batch_size, *shape), torch.randint(0, 10, (batch_size,))
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = lossf(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {"images_per_second": batch_size * steps / (time.perf_counter() - started), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def torch_eval(model="resnet50", batch_size=64, count=1024, threads=None, **_):
    """Eval-mode forward passes of a plain-torch model over ``count`` images, batch by batch."""
    import torch

    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(int(threads))
    build, shape = _torch_models()[model]
    net = build().eval()
    x = torch.randn(batch_size, *shape)
    with torch.inference_mode():
        net(x)
        started = time.perf_counter()
        done = 0
        while done < count:
            net(x)
            done += batch_size
    return {"images_per_second": done / (time.perf_counter() - started), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


WORKERS = {"pipeline-paddle": pipeline_paddle, "pipeline-hapi": pipeline_hapi, "train-metrics": train_metrics,
           "lenet-step": lenet_step,
           "onnxruntime": onnxruntime_eval, "torch-train": torch_train, "torch-eval": torch_eval}
# Workers that must see their thread count before the library they time is imported.
THREAD_ENV = ("OMP_NUM_THREADS",)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    name, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    if kwargs.get("threads"):
        for var in THREAD_ENV:
            os.environ[var] = str(kwargs["threads"])
    import warnings

    warnings.filterwarnings("ignore")
    print(json.dumps(WORKERS[name](**kwargs)))


if __name__ == "__main__":
    main()
