"""Every use of a private Paddle attribute, and of what Paddle does behind its API, in one place.

A Paddle upgrade that renames one of these touches this file and its test
(``tests/test_paddle_compat.py``) alone. Works with Paddle 2.6 and 3.x.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

def rebuild_conv(conv, in_channels: int):
    """A fresh Conv2D like ``conv`` but reading ``in_channels`` channels."""
    import paddle.nn as nn

    return nn.Conv2D(
        in_channels, conv._out_channels, conv._kernel_size, stride=conv._stride, padding=conv._padding,
        dilation=conv._dilation, groups=1, bias_attr=None if conv.bias is not None else False,
    )


def conv_groups(conv) -> int:
    """The ``groups`` a Conv2D was built with (its weight holds ``in_channels / groups`` input channels)."""
    return conv._groups


def optimizer_of(model):
    """The optimizer a ``paddle.Model`` was prepared with."""
    return model._optimizer


def loss_of(model):
    """The loss a ``paddle.Model`` was prepared with."""
    return model._loss


def grad_clip_of(optimizer):
    """The gradient clipping an optimizer was built with, or None."""
    return getattr(optimizer, "_grad_clip", None)


def accumulate_of(model) -> int:
    """The K of ``paddle.Model.fit(accumulate_grad_batches=K)`` running now (hapi keeps it on the model); 1 outside a fit."""
    return max(1, int(getattr(model, "_accumulate", 1) or 1))


def grad_scaler_of(model):
    """The AMP loss scaler hapi made at the first training step, or None before it (or without AMP)."""
    return getattr(model, "_scaler", None)


def amp_level_of(model) -> str:
    """The AMP level (``O0``, ``O1``, ``O2``) a ``paddle.Model`` was prepared with."""
    return getattr(model._adapter, "_amp_level", "O0")


def pending_optimizer_state(optimizer) -> dict:
    """The accumulators ``set_state_dict`` loaded and the next step will use (``<parameter name>_velocity_0``...).

    Paddle makes an optimizer's accumulators lazily at its first step and
    fills them then from what ``set_state_dict`` left in a holder; until
    that step the loaded state is visible only there.
    """
    return dict(optimizer._accumulators_holder)


def random_resized_crop_box(transform, image) -> tuple:
    """``(top, left, height, width)`` that paddle.vision's ``RandomResizedCrop`` would draw for ``image`` now."""
    return tuple(transform._dynamic_get_param(image))


def current_lr(model) -> Optional[float]:
    """The learning rate the optimizer uses for the next step."""
    opt = optimizer_of(model)
    return None if opt is None else float(opt.get_lr())


def learning_rate_of(optimizer):
    """What an optimizer was given as its learning rate: a float or an LRScheduler."""
    return getattr(optimizer, "_learning_rate", None)


def lr_scheduler_of(model):
    """The LRScheduler driving a ``paddle.Model``'s optimizer, or None for a constant rate (or no optimizer)."""
    from paddle.optimizer.lr import LRScheduler

    lr = learning_rate_of(optimizer_of(model))
    return lr if isinstance(lr, LRScheduler) else None


def request_stop(model) -> None:
    """Ends ``paddle.Model.fit`` after the current epoch (and its evaluation)."""
    model.stop_training = True


def set_cpu_threads(count: int) -> bool:
    """Sets the CPU math threads once Paddle is already imported.

    Paddle reads ``OMP_NUM_THREADS`` when it is imported (and sets it to 1 if
    unset), so the environment is the main route; this also sets the BLAS
    thread count that Paddle exposes through its core module.
    Returns False if this Paddle build has no such call.
    """
    from paddle.base import core

    fn = getattr(core, "set_num_threads", None)
    if fn is None:
        return False
    fn(int(count))
    return True


def inference_enable_onednn(config, cache_capacity: int = 0) -> None:
    """Turns oneDNN on for a ``paddle.inference.Config``.

    Paddle 3.x names it ``enable_onednn`` (``enable_mkldnn`` remains an
    alias); Paddle 2.6 has only ``enable_mkldnn``. ``cache_capacity`` bounds
    the kernels oneDNN caches per input shape (0: unbounded), which matters
    when batch sizes vary.
    """
    enable = getattr(config, "enable_onednn", None) or config.enable_mkldnn
    enable()
    if cache_capacity:
        capacity = getattr(config, "set_onednn_cache_capacity", None) or config.set_mkldnn_cache_capacity
        capacity(int(cache_capacity))


def _cpu_rng_state_is_lossy() -> bool:
    """True where pickling the CPU generator's state keeps its seed but not its position (Paddle 2.6).

    Paddle 3.x pickles a ``GeneratorState`` as ``(device, seed, offset,
    engine)``; Paddle 2.6 drops the Mersenne Twister engine, so a state
    loaded back restarts the stream from the seed.
    """
    from paddle.base import core

    return len(core.default_cpu_generator().get_state().__getstate__()) < 4


def rng_state_for_checkpoint() -> list:
    """``paddle.get_rng_state()`` in a form that survives ``paddle.save``/``paddle.load``.

    Restore it with ``paddle.set_rng_state``. On Paddle 3.x this is simply
    ``paddle.get_rng_state()``. On Paddle 2.6, where only the seed survives
    pickling (see :func:`_cpu_rng_state_is_lossy`), the CPU generator is first
    reseeded with a number drawn from its own stream, so the saved seed
    describes the stream exactly. The draw is deterministic, so an unbroken
    run and a resumed one still see the same random numbers; but on 2.6 the
    stream after a checkpoint differs from that of a run saving no
    checkpoint at that point.
    """
    import paddle

    if _cpu_rng_state_is_lossy():
        from paddle.base import core

        generator = core.default_cpu_generator()
        generator.manual_seed(generator.random() & (2**63 - 1))
    return paddle.get_rng_state()


def parameter_names(network) -> dict:
    """``{structured name: parameter name}`` of ``network``, e.g. ``{'0.weight': 'conv2d_3.w_0'}``.

    Paddle keys optimizer state by the parameter's unique name, which depends
    on how many layers the process built before; the structured name does not.
    """
    return {key: param.name for key, param in network.named_parameters()}


def remap_optimizer_state(state: dict, saved_names: dict, current_names: dict) -> dict:
    """``optimizer.state_dict()`` saved by one network, re-keyed for another network of the same structure.

    Optimizer accumulators are named ``<parameter name>_<accumulator>_<n>``
    (``linear_0.w_0_velocity_0``) and AMP master weights are keyed by the
    parameter name; a fresh network in the same process has other parameter
    names (``linear_1.w_0``), and ``Optimizer.set_state_dict`` would not find
    its accumulators. ``LR_Scheduler`` and unknown keys are kept as they are.

    The ``n`` counts the accumulators of that name the process made before
    (a second optimizer over the same parameters, as in ``--fine-tune``'s
    second phase, makes ``_velocity_1``). A renamed parameter is one the
    loading process has made no accumulator for yet, so its keys end in
    ``_0`` whatever the saving process had counted.

    Args:
        state: the saved optimizer state dict.
        saved_names: :func:`parameter_names` of the network that saved it.
        current_names: :func:`parameter_names` of the network to load into.
    """
    rename = {old: current_names[key] for key, old in saved_names.items() if key in current_names}
    # Longest names first, so that 'linear_1.w_0' never claims a key of 'linear_1.w_01'.
    olds = sorted(rename, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        if key == "master_weights" and isinstance(value, dict):
            out[key] = {rename.get(name, name): tensor for name, tensor in value.items()}
            continue
        new_key = key
        for old in olds:
            if key.startswith(old + "_"):
                rest = key[len(old):]
                new_key = rename[old] + (re.sub(r"_\d+$", "_0", rest) if rename[old] != old else rest)
                break
        out[new_key] = value
    return out


def scaled_lr_of(model):
    """The :class:`hapi_runner.training.optim.ScaledLR` driving ``model``'s optimizer, or None without an optimizer.

    ``build_optimizer`` always gives one; an optimizer made elsewhere with a
    float or a plain LRScheduler has it wrapped in a ScaledLR (scale 1) here,
    through the public ``Optimizer.set_lr_scheduler``, so a plateau callback
    can lower it. Wrapping a float adds an ``LR_Scheduler`` entry to the
    optimizer's state from then on.
    """
    from .training.optim import ScaledLR

    opt = optimizer_of(model)
    if opt is None:
        return None
    lr = learning_rate_of(opt)
    if not isinstance(lr, ScaledLR):
        lr = ScaledLR(lr)
        opt.set_lr_scheduler(lr)
    return lr


def clear_stop_request(model) -> None:
    """Undoes :func:`request_stop`: hapi never resets ``stop_training``, so a later ``fit`` would stop after one epoch."""
    model.stop_training = False


def drop_persistent_workers(loader) -> None:
    """Forgets a DataLoader's persistent worker iterator, so its next ``iter()`` starts new workers.

    With ``persistent_workers=True`` the loader keeps one iterator for every
    epoch and only resets it; after its workers died that iterator is broken
    and resetting it waits forever. Dropping it lets Paddle shut it down.
    """
    if getattr(loader, "_persistent_workers", False):
        loader._iterator = None


def lr_schedule_name(model) -> Optional[str]:
    """The class name of the schedule behind the optimizer's rate, None for a constant rate.

    Looks through :class:`hapi_runner.training.optim.ScaledLR`, which wraps every rate
    ``build_optimizer`` makes, so ``cosine`` and ``constant`` runs stay apart
    (``type(lr_scheduler_of(model)).__name__`` is ``ScaledLR`` for both).
    """
    from .training.optim import ScaledLR

    lr = lr_scheduler_of(model)
    if isinstance(lr, ScaledLR):
        return None if lr.inner_type == "constant" else lr.inner_type
    return None if lr is None else type(lr).__name__


def parallel_env_initialized() -> bool:
    """Whether ``paddle.distributed.init_parallel_env`` has run in this process.

    ``paddle.distributed.is_initialized`` is public from Paddle 2.5 on; older
    releases keep the flag in ``paddle.fluid.dygraph.parallel_helper``.
    """
    import paddle.distributed as dist

    public = getattr(dist, "is_initialized", None)
    if public is not None:
        return bool(public())
    try:
        from paddle.fluid.dygraph import parallel_helper
    except ImportError:
        return False
    return bool(parallel_helper._is_parallel_ctx_initialized())


def set_amp_dtype(model, level: str, dtype: str) -> None:
    """Makes a prepared ``paddle.Model`` train at AMP ``level`` in ``dtype`` (``float16`` or ``bfloat16``).

    hapi's ``amp_configs`` has no dtype key. Its dygraph adapter runs the
    forward pass under ``paddle.amp.auto_cast(**adapter._amp_custom_lists,
    level=...)`` and, for O2, calls ``paddle.amp.decorate(level='O2')`` in
    ``prepare`` with decorate's float16 default. So the dtype goes into the
    keywords auto_cast receives and, for O2 in bfloat16, the model must have
    been prepared at O1 (hapi then decorates nothing) and is decorated here.
    float16 is hapi's own behaviour and needs nothing.
    """
    if dtype == "float16":
        return
    import paddle

    adapter = model._adapter
    adapter._amp_custom_lists["dtype"] = dtype
    if level == "O2":
        model.network, model._optimizer = paddle.amp.decorate(
            models=model.network, optimizers=model._optimizer, level="O2", dtype=dtype)
        adapter._amp_level = "O2"
        model._scaler = None


def evaluate_under_amp(model, level: Optional[str], dtype: str = "float16") -> None:
    """Makes a prepared ``paddle.Model`` evaluate and predict under ``paddle.amp.auto_cast(level, dtype)``, as it trains.

    hapi's dygraph adapter runs only ``train_batch`` under ``auto_cast``;
    its ``eval_batch`` and ``predict_batch`` call the network bare, so after
    O2 (half-precision weights) the first evaluation feeds float32 images to
    float16 or bfloat16 weights and fails. Wrapping both on the adapter
    covers ``fit``'s evaluations, ``evaluate`` and ``predict``. The white and
    black lists are those ``prepare`` was given. Nothing changes for
    ``level`` None (AMP off).

    Args:
        model: a ``paddle.Model`` after ``prepare``.
        level: ``O1``, ``O2`` or None.
        dtype: ``float16`` or ``bfloat16``. Defaults to ``float16``.
    """
    if not level:
        return
    import paddle

    adapter = model._adapter
    lists = {k: v for k, v in adapter._amp_custom_lists.items() if k in ("custom_white_list", "custom_black_list")}
    for name in ("eval_batch", "predict_batch"):
        bare = getattr(adapter, name)

        def under_amp(*args, _bare=bare, **kwargs):
            with paddle.amp.auto_cast(enable=True, level=level, dtype=dtype, **lists):
                return _bare(*args, **kwargs)

        setattr(adapter, name, under_amp)


# Where a checkpoint's optimizer file keeps the AMP loss scaler's state (no parameter name starts with it).
GRAD_SCALER_KEY = "hapi_runner.GradScaler"


def optimizer_state_with_scaler(model) -> dict:
    """The optimizer's ``state_dict()``, with the AMP loss scaler's state under :data:`GRAD_SCALER_KEY` when there is one.

    hapi makes the ``GradScaler`` at the first training step and keeps it
    as ``model._scaler``; its state (the current loss scale and its step
    counts) is what a resumed float16 run needs, or it restarts at the
    initial scale and skips steps until the scale has come down again.
    Empty without an optimizer.
    """
    optimizer = optimizer_of(model)
    state = dict(optimizer.state_dict()) if optimizer is not None else {}
    scaler = grad_scaler_of(model)
    scaler_state = scaler.state_dict() if scaler is not None else {}
    if scaler_state:  # a disabled scaler (bfloat16 without scaling, the CPU) has none
        state[GRAD_SCALER_KEY] = scaler_state
    return state


def split_scaler_state(optimizer_state: dict) -> Tuple[dict, Optional[dict]]:
    """``(optimizer state, scaler state or None)`` of what :func:`optimizer_state_with_scaler` saved."""
    state = dict(optimizer_state)
    return state, state.pop(GRAD_SCALER_KEY, None)


def restore_grad_scaler(model, scaler_state: Optional[dict]) -> bool:
    """Gives a prepared ``paddle.Model`` the loss scaler a checkpoint saved; returns whether it did.

    The scaler is made the way hapi makes it at the first training step
    (``paddle.amp.GradScaler(**adapter._amp_configs)``), which then keeps
    it. Nothing happens without a saved state or when this run trains
    without AMP.
    """
    if not scaler_state or amp_level_of(model) == "O0":
        return False
    import paddle

    if getattr(model, "_scaler", None) is None:
        model._scaler = paddle.amp.GradScaler(**model._adapter._amp_configs)
    # paddle.load hands the saved scale back as a Tensor; GradScaler.load_state_dict indexes it as an array.
    model._scaler.load_state_dict({k: v.numpy() if hasattr(v, "numpy") else v for k, v in scaler_state.items()})
    return True


def amp_dtype_of(model) -> str:
    """The dtype a prepared ``paddle.Model``'s AMP casts to (``float16`` unless :func:`set_amp_dtype` changed it)."""
    return model._adapter._amp_custom_lists.get("dtype", "float16")


def paddle2onnx_export_options() -> dict:
    """Keyword arguments for ``paddle2onnx.export`` that the installed paddle2onnx takes.

    paddle2onnx 2.x (which needs Paddle 3) takes ``optimize_tool``; 1.x, the
    release that works with Paddle 2.6, rejects it.
    """
    import inspect

    import paddle2onnx

    options = {"enable_optimize": True}
    if "optimize_tool" in inspect.signature(paddle2onnx.export).parameters:
        options["optimize_tool"] = "None"
    return options


def create_optimizer_state(optimizer) -> None:
    """Creates the optimizer's accumulators (momentum, Adam's moments and beta powers) now, at their initial values.

    Paddle creates them inside the first ``step()``, named
    ``<parameter>_<accumulator>_<n>`` with ``n`` counted per process. A trial
    run that must leave no trace (the LR finder, the time budget's measure)
    creates them first, so its snapshot holds their initial values and the
    run that follows uses the same tensors, under the names it would have had.
    """
    import paddle
    from paddle.base.layer_helper import LayerHelper

    if getattr(optimizer, "helper", None) is None:
        # Paddle 2.6 makes the helper that creates accumulators inside the first step; 3.x also outside it.
        optimizer.helper = LayerHelper(optimizer.__class__.__name__)
    block = paddle.static.default_main_program().global_block()
    groups = optimizer._param_groups
    if groups and isinstance(groups[0], dict):
        for group in groups:
            params = [p for p in group["params"] if not p.stop_gradient]
            optimizer._create_accumulators(block, {**group, "params": params})
    else:
        optimizer._create_accumulators(block, [p for p in optimizer._parameter_list if not p.stop_gradient])


def keep_batch_norm_statistics(layers, keep: bool = True) -> int:
    """Makes every batch norm among ``layers`` normalise with its running statistics, in train mode too; returns how many.

    ``keep=False`` gives them back Paddle's default (batch statistics in
    train mode), for a backbone unfrozen again. Defaults to True.

    A frozen backbone's batch norms must not learn from the new data: in
    train mode they would normalise by each batch's statistics and update
    their running ones. Paddle's ``use_global_stats`` argument does exactly
    this, but only at construction; ``_use_global_stats`` is where the
    layers keep it.
    """
    import paddle

    kinds = (paddle.nn.BatchNorm, paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D, paddle.nn.SyncBatchNorm)
    count = 0
    for layer in layers:
        if isinstance(layer, kinds):
            layer._use_global_stats = True if keep else None  # None: Paddle's default, by the mode
            count += 1
    return count
