"""Problem 4 (a)-(c): ``train`` (one epoch), ``get_prediction``, ``evaluate``, ``make_optimizer``, and
``fit``, which runs one trial (a config, a split, a seed) to a plain-data result.

Batches are index tensors into the in-memory data (see data.py); the whole epoch is one Python
loop with no DataLoader, no per-sample transforms and no worker processes.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from .data import Split, augment, batches, parse_augment  # by name: the notebook copies these
from .model import ModelConfig, build_model, count_parameters, plain_dict

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "onecycle", "cosine", "step")
PRECISIONS = ("fp32", "bf16")
EVAL_BATCH = 1000


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial depends on apart from data and seed; a grid file edits these fields."""

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "adamw"
    lr: float = 3e-3
    schedule: str = "onecycle"
    momentum: float = 0.9            # SGD momentum (Adam's beta1 stays at 0.9)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    dropout: float = ModelConfig.dropout
    hidden: int = ModelConfig.hidden                # units of a hidden fully connected layer (0: none)
    init: str = ModelConfig.init
    channels: tuple[int, ...] = ModelConfig.channels
    depth: int | tuple[int, ...] = ModelConfig.depth    # convolutions per stage: one number, or one per stage
    augment: str = "flip+crop"
    channels_last: bool = True       # NHWC activations: about twice as fast on a CPU (benchmarks/)
    flip_tta: bool = ModelConfig.flip_tta           # predict from the mean logits of the image and its mirror
    precision: str = "bf16"          # training forward pass in bfloat16 where the hardware does it natively
    curve_images: int = 2000         # validate the epochs before the last on this many images (0: all)

    def model_config(self) -> ModelConfig:
        """The architecture fields, taken by name: ModelConfig is their one definition."""
        return ModelConfig(**{f.name: getattr(self, f.name) for f in fields(ModelConfig) if f.name in FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    def updated(self, overrides: dict[str, Any]) -> TrialConfig:
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return replace(self, **overrides)


FIELDS = {f.name: f for f in fields(TrialConfig)}


class Diverged(Exception):
    """The training loss became NaN or infinite."""


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    seconds: float


@dataclass
class Scores:
    accuracy: float
    loss: float
    correct: torch.Tensor        # bool per image, in the order given:
                                 # paired tests compare trials image by image


def make_optimizer(model: nn.Module, cfg: TrialConfig) -> torch.optim.Optimizer:
    """The one place the optimizer is set up (Problem 4c). Weight decay skips BatchNorm and biases,
    which it would only pull towards zero without regularising anything."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"optimizer {cfg.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrialConfig,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-batch learning-rate schedule; ``cfg.lr`` is the peak (onecycle) or starting rate."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=0.25, div_factor=10.0, final_div_factor=100.0)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "step":  # divide by 10 after half and again after three quarters of training
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [total // 2, 3 * total // 4], gamma=0.1)
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"schedule {cfg.schedule!r}: use one of {', '.join(SCHEDULES)}")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (AVX512-BF16 or AMX CPUs, Ampere or later GPUs);
    elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, probe, lambda: False)()
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def training_precision(cfg: TrialConfig, device: torch.device) -> str:
    """The precision a trial really trains in: bf16 only where asked for and native, else fp32."""
    return "bf16" if cfg.precision == "bf16" and native_bf16(device) else "fp32"


def train(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
          scheduler: torch.optim.lr_scheduler.LRScheduler, criterion: nn.Module, cfg: TrialConfig,
          generator: torch.Generator, device: torch.device) -> EpochStats:
    """Train ``net`` for one epoch (Problem 4a): shuffle, augment each batch, step. Raises Diverged."""
    start = time.perf_counter()
    net.train()
    ops = parse_augment(cfg.augment)
    bf16 = training_precision(cfg, device) == "bf16"  # weights, gradients and the optimizer stay fp32
    total_loss, correct, seen = 0.0, 0, 0
    for idx in batches(len(labels), cfg.batch_size, generator, drop_last=True):
        x = augment(images[idx], ops, generator).to(device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[idx].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
            loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(f"loss {value} after {seen} images")
        total_loss += value * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), time.perf_counter() - start)


@torch.no_grad()
def get_prediction(image: torch.Tensor, net: nn.Module) -> torch.Tensor | int:
    """Index of the predicted class (Problem 4b): an int for one image (1, 28, 28), a tensor for a batch."""
    net.eval()
    batch = image.unsqueeze(0) if image.dim() == 3 else image
    device = next(net.parameters()).device
    pred = net(batch.to(device)).argmax(dim=1).cpu()
    return int(pred[0]) if image.dim() == 3 else pred


@torch.inference_mode()
def evaluate(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, criterion: nn.Module | None = None,
             bf16: bool = False, channels_last: bool = False, batch_size: int = EVAL_BATCH) -> Scores:
    """Accuracy (Problem 4b), mean loss and per-image correctness of ``net`` on a labelled set.

    Validation runs on the training fast path (large batches, ``inference_mode``, the trial's memory
    layout and precision) so that it costs less than an epoch of training. The test set is scored with
    the defaults (fp32, NCHW): the number ``evaluate_model`` prints for the saved file."""
    net.eval()
    device = next(net.parameters()).device
    correct, loss = [], 0.0
    for i in range(0, len(labels), batch_size):
        x, y = images[i:i + batch_size].to(device), labels[i:i + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(x).float()
        correct.append((logits.argmax(1) == y).cpu())
        if criterion is not None:
            loss += float(criterion(logits, y)) * len(y)
    hits = torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
    n = max(len(labels), 1)
    return Scores(int(hits.sum()) / n, loss / n, hits)


def fit(cfg: TrialConfig, split: Split, seed: int, device: torch.device,
        on_epoch: Callable[[dict], None] | None = None, keep_model: bool = False) -> dict[str, Any]:
    """Train one configuration and return plain data: status ("ok" or "diverged"), the per-epoch
    history (train loss/accuracy, validation loss/accuracy when there is a validation set, seconds,
    learning rate), ``val_correct`` (the final epoch's per-image correctness on the validation split,
    for paired tests) and, with ``keep_model``, the trained ``net``.

    Validation costs as much per image as training, so only the last epoch, whose numbers every
    comparison uses, is scored on the whole split; the epochs before it on its first
    ``cfg.curve_images`` images (a fixed random sample: the split is a random permutation). Each row
    says how many images it used (``val_images``), and the last also gives ``curve_acc``, its
    accuracy on the curve's images."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = build_model(cfg.model_config()).to(device)
    if cfg.channels_last:  # the memory layout of the weights and activations, not of the saved file
        net = net.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(net, cfg)
    steps = max(len(split.train_y) // cfg.batch_size, 1)
    scheduler = make_scheduler(optimizer, cfg, steps)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    plain = nn.CrossEntropyLoss()
    history, status, error, scores = [], "ok", None, None
    bf16 = training_precision(cfg, device) == "bf16"
    curve = min(cfg.curve_images or len(split.val_y), len(split.val_y))
    previous = None   # the epoch before's per-image correctness on the curve's images: for a paired test
    for epoch in range(1, cfg.epochs + 1):
        try:
            stats = train(net, split.train_x, split.train_y, optimizer, scheduler, criterion, cfg, generator,
                          device)
        except Diverged as exc:
            status, error = "diverged", f"epoch {epoch}: {exc}"
            break
        row = {"epoch": epoch, "train_s": stats.seconds, "train_loss": stats.loss,
               "train_acc": stats.accuracy, "lr": optimizer.param_groups[0]["lr"]}
        if len(split.val_y):
            val_start = time.perf_counter()
            n = len(split.val_y) if epoch == cfg.epochs else curve
            scores = evaluate(net, split.val_x[:n], split.val_y[:n], plain, bf16=bf16,
                              channels_last=cfg.channels_last)
            row.update(val_acc=scores.accuracy, val_loss=scores.loss, val_images=n)
            if n > curve:  # the last epoch on the curve's images too, so the curve compares like with like
                row["curve_acc"] = int(scores.correct[:curve].sum()) / curve
            now = scores.correct[:curve].bool()
            if previous is not None:   # [right only now, right only the epoch before], same images
                row["curve_discordant"] = [int((now & ~previous).sum()), int((previous & ~now).sum())]
            previous = now
            row["val_s"] = time.perf_counter() - val_start
        history.append(row)
        if on_epoch:
            on_epoch(row)
    ok = status == "ok" and scores is not None
    result = {"config": cfg.to_dict(), "seed": seed, "status": status,
              "precision": training_precision(cfg, device),
              "error": error, "history": history, "params": count_parameters(net),
              "train_s": sum(r["train_s"] for r in history),
              "val_s": sum(r.get("val_s", 0.0) for r in history),
              "train_images": len(split.train_y), "val_images": len(split.val_y),
              "val_acc": scores.accuracy if ok else None,
              "val_correct": scores.correct.numpy() if ok else None}  # the final epoch's, image by image
    if keep_model:  # back to the default layout: a network rebuilt from the saved file computes the same way
        result["net"] = net.to(memory_format=torch.contiguous_format)
    return result

