"""`thrifty finetune`'s training loop: one config, one function, three methods.

    lora         PEFT LoRA on the base (the base stays frozen)     → DIR/adapter/
    progressive  three stages of gradual unfreezing (progressive.py) → DIR/model/
    kd           logit distillation from a local teacher sharing the tokenizer, else
                 sequence-level distillation (SFT on the teacher's answers)     → DIR/model/

The loop is plain PyTorch (AdamW, grad clipping, gradient accumulation) over stages; the loss is
computed on answer tokens only. Checkpoints (checkpoint.py) make a run resumable; the outputs and
the manifest are the contract in base.py.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.train import checkpoint
from thrifty.train.base import ADAPTER_DIR, MANIFEST, MODEL_DIR, load_base, offline, resolve_base
from thrifty.train.data import (
    Encoded,
    Message,
    chat_template,
    collate,
    encode_all,
    epoch_order,
    read_chats,
)
from thrifty.train.losses import KD_ALPHA, KD_TEMPERATURE, answer_ce, kd_loss
from thrifty.train.progressive import Stage, progressive_stages, single_stage, trainable_share

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from transformers import PreTrainedTokenizerBase

METHODS = ("lora", "progressive", "kd")
DEFAULT_LR = {"lora": 2e-4, "progressive": 1e-4, "kd": 5e-5}
LOG = "train-log.jsonl"
TEACHER_ANSWERS = "teacher-answers.jsonl"
# Arguments that may differ between a run and its --resume without changing what is trained.
_RESUMABLE_CHANGES = frozenset({"resume", "eval_data", "save_every", "threads", "cache_base"})

Say = Callable[[str], None]
LossFn = Callable[["torch.nn.Module", dict[str, "torch.Tensor"]], "torch.Tensor"]


class TrainError(Exception):
    """A run that cannot start or go on; the message says why and what to do."""


@dataclass
class FinetuneConfig:
    """Everything a run depends on; stored in the manifest's "args"."""

    base: str
    data: Path
    out: Path
    method: str = "lora"
    eval_data: Path | None = None
    epochs: int = 1
    lr: float | None = None  # None: DEFAULT_LR[method]
    batch_size: int = 8
    max_len: int = 512
    grad_accum: int = 1
    save_every: int = 50
    resume: bool = False
    seed: int = 0
    threads: int | None = None  # None: every core this process may use
    cache_base: bool = False  # keep a GGUF base dequantized under home/cache (base.load_base)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    stage_steps: tuple[int, int, int] | None = None  # None: the epochs split in thirds
    stage2_lr: float = 1e-5
    stage3_lr: float = 5e-6
    stage3_accum: int = 4
    teacher: str | None = None
    teacher_url: str | None = None  # set: `teacher` is a model name behind this API
    teacher_api_key: str | None = None
    teacher_max_tokens: int = 256
    kd_alpha: float = KD_ALPHA
    kd_temperature: float = KD_TEMPERATURE

    def args(self) -> dict[str, Any]:
        """The arguments as JSON gives them back (paths as strings, tuples as lists), no API key."""
        raw = asdict(self)
        raw.pop("teacher_api_key")
        return {k: _json_safe(v) for k, v in raw.items()}


def _json_safe(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


def finetune(config: FinetuneConfig, home: Path, say: Say) -> dict[str, Any]:
    """Train, save the outputs and the manifest into config.out; return the manifest."""
    import torch

    started = time.monotonic()
    resume_from = _check(config)
    chats = read_chats(config.data)  # bad data fails before the slow model load
    held = read_chats(config.eval_data) if config.eval_data is not None else None
    offline()
    device = _device(config.threads)
    base_model, tokenizer = load_base(config.base, home, cache=config.cache_base)
    torch.manual_seed(config.seed)  # the LoRA init and dropout: the same seed, the same run
    teacher, chats, kd_mode = None, chats, None
    if config.method == "kd":
        teacher, chats, kd_mode = _teacher(config, tokenizer, chats, home, device, say)
    examples, dropped = encode_all(tokenizer, chats, config.max_len)
    if dropped:
        say(f"skipped {dropped} example(s) whose answer starts past --max-len {config.max_len}")
    model = _prepare(base_model, config).to(device)
    pad_id = _pad_id(tokenizer)
    batches = _Batches(examples, config.batch_size, config.seed, pad_id, device)
    stages = _stages(config, batches.per_epoch)
    short = too_short(sum(s.steps for s in stages), len(examples), batches.per_epoch, config)
    if short:
        say(short)
    progress, optimizer_state = _restore(resume_from, model, config, say)
    clock = _Clock(started, progress.wall_s)
    loss_fn = _kd_loss_fn(teacher, config) if teacher is not None else _sft_loss
    _train(model, stages, batches, loss_fn, progress, optimizer_state, config, clock, say)
    fmt = _save_outputs(model, tokenizer, config)
    eval_loss = None
    if held is not None:
        held_out, _ = encode_all(tokenizer, held, config.max_len)
        eval_loss = evaluate(model, held_out, config.batch_size, pad_id, device)
    plot_losses(progress.losses, config.out / "loss.png", f"thrifty finetune {config.method}")
    args = config.args() | ({"kd_mode": kd_mode} if kd_mode else {})
    manifest = {
        "method": config.method,
        "base": config.base,
        "base_path": str(resolve_base(config.base, home).resolve()),
        "format": fmt,
        "chat_template": chat_template(tokenizer),
        "steps": progress.step,
        "final_loss": _final_loss(progress.losses),
        "eval_loss": eval_loss,
        "wall_s": round(clock(), 2),
        "args": args,
    }
    (config.out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    # A finished run is never resumed, and a full model's checkpoints hold gigabytes (weights and
    # two Adam moments each).
    shutil.rmtree(config.out / checkpoint.CHECKPOINTS, ignore_errors=True)
    return manifest


def _check(config: FinetuneConfig) -> Path | None:
    """The checkpoint to resume from; refuse what cannot run, an overwrite, a finished run."""
    if config.method not in METHODS:
        raise TrainError(f"unknown method {config.method!r}: one of {', '.join(METHODS)}")
    if config.method == "kd" and not config.teacher:
        raise TrainError(
            "--method kd needs --teacher (a local model, or a name with --teacher-url)"
        )
    if (config.out / MANIFEST).exists():
        raise TrainError(f"{config.out} holds a finished run; pick another --out")
    last = checkpoint.latest(config.out)
    if last is not None and not config.resume:
        raise TrainError(f"{config.out} holds checkpoints: add --resume, or pick another --out")
    return last if config.resume else None


def _device(threads: int | None) -> torch.device:
    """The GPU when there is one, else the CPU with a thread per core we may use."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    return torch.device("cpu")


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """Any id works (padding is masked out of attention and loss); prefer the declared one."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            return candidate
    return 0


def _prepare(model: torch.nn.Module, config: FinetuneConfig) -> torch.nn.Module:
    """LoRA wraps the base in PEFT (only the adapter learns); the others train the model itself."""
    model.train()  # from_pretrained returns eval mode: dropout off
    if config.method != "lora":
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
    )
    peft_model: torch.nn.Module = get_peft_model(model, lora)
    return peft_model


def _stages(config: FinetuneConfig, per_epoch: int) -> list[Stage]:
    micro_batches = config.epochs * per_epoch
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.method]
    if config.method != "progressive":
        return [single_stage(math.ceil(micro_batches / config.grad_accum), lr, config.grad_accum)]
    third = micro_batches / 3
    steps = config.stage_steps or (
        math.ceil(third / config.grad_accum),
        math.ceil(third / config.grad_accum),
        math.ceil(third / config.stage3_accum),
    )
    return progressive_stages(
        steps, lr, config.stage2_lr, config.stage3_lr, config.grad_accum, config.stage3_accum
    )


class _Clock:
    """Seconds spent on the run so far: this invocation's plus those before a --resume."""

    def __init__(self, started: float, before: float) -> None:
        self.started, self.before = started, before

    def __call__(self) -> float:
        return self.before + time.monotonic() - self.started


class _Batches:
    """Micro-batch number → padded tensors; the order depends only on (seed, epoch)."""

    def __init__(
        self, examples: list[Encoded], size: int, seed: int, pad_id: int, device: torch.device
    ) -> None:
        self.examples, self.size, self.seed = examples, size, seed
        self.pad_id, self.device = pad_id, device
        self.per_epoch = math.ceil(len(examples) / size)
        self._order: tuple[int, list[int]] = (-1, [])

    def __getitem__(self, micro: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(micro, self.per_epoch)
        if self._order[0] != epoch:
            self._order = (epoch, epoch_order(len(self.examples), epoch, self.seed))
        chosen = self._order[1][index * self.size : (index + 1) * self.size]
        batch = collate([self.examples[i] for i in chosen], self.pad_id)
        return {name: tensor.to(self.device) for name, tensor in batch.items()}


def _restore(
    resume_from: Path | None, model: torch.nn.Module, config: FinetuneConfig, say: Say
) -> tuple[checkpoint.Progress, dict[str, Any] | None]:
    """Fresh progress, or the checkpoint's (weights and RNG restored into place)."""
    if resume_from is None:
        (config.out / LOG).unlink(missing_ok=True)
        return checkpoint.Progress(), None
    progress, saved_args = checkpoint.load_state(resume_from)
    changed = sorted(
        k for k, v in config.args().items() if k not in _RESUMABLE_CHANGES and saved_args[k] != v
    )
    if changed:
        raise TrainError(f"--resume with other settings than the run had: {', '.join(changed)}")
    optimizer_state = checkpoint.load_tensors(resume_from, model)
    _truncate_log(config.out / LOG, progress.step)
    say(f"resuming from {resume_from} (step {progress.step})")
    return progress, optimizer_state


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint: those steps are trained again."""
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(ln for ln in lines if json.loads(ln)["step"] <= step))


def _train(
    model: torch.nn.Module,
    stages: list[Stage],
    batches: _Batches,
    loss_fn: LossFn,
    progress: checkpoint.Progress,
    optimizer_state: dict[str, Any] | None,
    config: FinetuneConfig,
    clock: _Clock,
    say: Say,
) -> None:
    """Run the stages from `progress` on; on Ctrl-C save a checkpoint, then stop."""
    import torch

    def save(optimizer: torch.optim.Optimizer) -> Path:
        progress.wall_s = clock()
        return checkpoint.save(config.out, progress, model, optimizer, config.args())

    bar = _progress_bar(sum(s.steps for s in stages), progress.step, config.method)
    first = 0  # the global step where the stage starts
    for index, stage in enumerate(stages):
        end = first + stage.steps
        if progress.step >= end:
            first = end
            continue
        stage.unfreeze(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=stage.lr(0))
        if optimizer_state is not None and progress.stage == index:
            optimizer.load_state_dict(optimizer_state)
        progress.stage = index
        if len(stages) > 1:
            say(f"stage {stage.name}: {trainable_share(model):.0%} of the parameters learn")
        try:
            while progress.step < end:
                lr = stage.lr(progress.step - first)
                loss = _step(
                    model, optimizer, batches, progress.micro, stage.grad_accum, lr, loss_fn
                )
                progress.step += 1
                progress.micro += stage.grad_accum
                progress.losses.append(loss)
                _log(config.out / LOG, progress, stage.name, lr, clock())
                bar.update(1)
                bar.set_postfix_str(f"loss {loss:.4f}")
                if progress.step % config.save_every == 0:
                    save(optimizer)
        except KeyboardInterrupt:
            bar.close()
            saved = save(optimizer)
            say(f"\ninterrupted: saved {saved}; continue with the same command and --resume")
            raise
        first = end
    bar.close()


def _step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: _Batches,
    micro: int,
    grad_accum: int,
    lr: float,
    loss_fn: LossFn,
) -> float:
    """One optimizer step over `grad_accum` micro-batches; the mean micro-batch loss."""
    import torch

    for group in optimizer.param_groups:
        group["lr"] = lr
    total = 0.0
    for offset in range(grad_accum):
        loss = loss_fn(model, batches[micro + offset])
        (loss / grad_accum).backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / grad_accum


def _sft_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the batch's answer tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    total, count = answer_ce(logits, batch["labels"])
    return total / count


def _kd_loss_fn(teacher: torch.nn.Module, config: FinetuneConfig) -> LossFn:
    import torch

    def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        student = model(**inputs).logits  # (batch, seq, vocab)
        with torch.no_grad():
            teacher_logits = teacher(**inputs).logits
        vocab = min(student.shape[-1], teacher_logits.shape[-1])  # same tokens; padding may differ
        return kd_loss(
            student[..., :vocab],
            teacher_logits[..., :vocab],
            batch["labels"],
            config.kd_alpha,
            config.kd_temperature,
        ).total

    return loss


def _teacher(
    config: FinetuneConfig,
    tokenizer: PreTrainedTokenizerBase,
    chats: list[list[Message]],
    home: Path,
    device: torch.device,
    say: Say,
) -> tuple[torch.nn.Module | None, list[list[Message]], str]:
    """(teacher for logit KD, chats, "logits"), or (None, chats relabelled by the teacher,
    "sequence") when its logits are not usable: an API teacher, or another tokenizer."""
    from thrifty.train import teacher as teachers

    assert config.teacher is not None  # _check
    cached = config.out / TEACHER_ANSWERS
    if config.teacher_url:
        say(
            f"kd: teacher {config.teacher!r} is behind an API (no logits): sequence-level "
            "distillation, SFT on its answers"
        )
        answer = teachers.api_answerer(
            config.teacher_url, config.teacher, config.teacher_api_key, config.teacher_max_tokens
        )
    else:
        loaded, teacher_tokenizer = load_base(config.teacher, home)
        model: torch.nn.Module = loaded
        model = model.to(device).eval()
        if teachers.same_vocab(teacher_tokenizer, tokenizer):
            say(f"kd: logit distillation from {config.teacher} (T={config.kd_temperature})")
            return model, chats, "logits"
        say(
            f"kd: teacher {config.teacher!r} has another tokenizer (vocab mismatch): "
            "sequence-level distillation, SFT on its answers"
        )
        answer = teachers.local_answerer(model, teacher_tokenizer, config.teacher_max_tokens)
    if config.resume and cached.exists():
        return None, read_chats(cached), "sequence"
    relabelled = teachers.relabel(chats, answer)
    config.out.mkdir(parents=True, exist_ok=True)
    with cached.open("w", encoding="utf-8") as out:
        for chat in relabelled:
            out.write(json.dumps({"messages": chat}, ensure_ascii=False) + "\n")
    return None, relabelled, "sequence"


def _log(path: Path, progress: checkpoint.Progress, stage: str, lr: float, wall_s: float) -> None:
    """One JSON line per step; wall_s (seconds since the run began) times the steps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "step": progress.step,
        "stage": stage,
        "loss": progress.losses[-1],
        "lr": lr,
        "wall_s": round(wall_s, 3),
    }
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


def _save_outputs(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, config: FinetuneConfig
) -> str:
    """DIR/adapter/ for LoRA ("adapter"), else DIR/model/ with the tokenizer beside it ("full")."""
    if config.method == "lora":
        # the vocabulary is never resized: no embedding copy (and no hub lookup to decide that)
        model.save_pretrained(  # type: ignore[operator]
            config.out / ADAPTER_DIR, save_embedding_layers=False
        )
        return "adapter"
    model.save_pretrained(config.out / MODEL_DIR, safe_serialization=True)  # type: ignore[operator]
    tokenizer.save_pretrained(config.out / MODEL_DIR)
    return "full"


def evaluate(
    model: torch.nn.Module,
    examples: list[Encoded],
    batch_size: int,
    pad_id: int,
    device: torch.device,
) -> float:
    """Mean cross-entropy per answer token over held-out examples."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size], pad_id)
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            ).logits
            summed, n = answer_ce(logits, batch["labels"].to(device))
            total, count = total + float(summed), count + n
    return total / max(count, 1)


def _final_loss(losses: list[float]) -> float | None:
    """The mean of the last (up to) 10 steps: one step's loss is too noisy to report."""
    tail = losses[-10:]
    return round(sum(tail) / len(tail), 6) if tail else None


# Fewer optimizer steps than this learn next to nothing at the default learning rates (the
# intent task's 75 steps learn; 16 examples at batch 8, i.e. 2 steps, change nothing visible).
MIN_STEPS = 20


def too_short(steps: int, examples: int, per_epoch: int, config: FinetuneConfig) -> str | None:
    """A warning, saying what to raise, when a run has too few optimizer steps to learn."""
    if steps >= MIN_STEPS:
        return None
    if config.method == "progressive" and config.stage_steps is not None:
        fix = "raise --stage-steps (e.g. 10,10,20)"
    else:
        epochs = config.epochs + 1  # the fewest epochs that make enough steps
        while (
            epochs < 10_000 and _total_steps(replace(config, epochs=epochs), per_epoch) < MIN_STEPS
        ):
            epochs += 1
        fix = f"raise --epochs to {epochs}"
        if config.batch_size > 1:
            fix += ", or lower --batch-size"
    return (
        f"warning: this run makes only {steps} optimizer step{'s' if steps != 1 else ''} "
        f"({examples} examples, batch {config.batch_size}, {config.epochs} "
        f"epoch{'s' if config.epochs != 1 else ''}): too few to learn anything (aim for "
        f"{MIN_STEPS} or more). To learn, {fix}, or add examples."
    )


def _total_steps(config: FinetuneConfig, per_epoch: int) -> int:
    return sum(stage.steps for stage in _stages(config, per_epoch))


def plot_losses(losses: list[float], path: Path, title: str) -> None:
    """The loss per step as a PNG; a run too short for a curve shows its steps as points."""
    loss_figure(losses, title).savefig(path)


def loss_figure(losses: list[float], title: str) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = range(1, len(losses) + 1)
    if len(losses) >= MIN_STEPS:
        axes.plot(steps, losses, linewidth=1)
    else:  # one or two points make no line, and a line through a few suggests a trend
        axes.plot(steps, losses, "o", markersize=7)
        axes.set_xlim(0.5, max(len(losses), 1) + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.text(
            0.5,
            0.95,
            f"only {len(losses)} step{'s' if len(losses) != 1 else ''}: too few to learn or "
            f"to show a trend (aim for {MIN_STEPS}+)",
            transform=axes.transAxes,
            ha="center",
            va="top",
            fontsize=9,
            color="#b2182b",
        )
    axes.set(xlabel="step", ylabel="training loss (answer tokens)", title=title)
    axes.grid(alpha=0.3)
    return figure


class _LineBar:
    """A stand-in for tqdm: a line every ~5% of the steps."""

    def __init__(self, total: int, initial: int, label: str) -> None:
        self.total, self.done, self.label, self.postfix = total, initial, label, ""
        self.every = max(total // 20, 1)

    def update(self, n: int) -> None:
        self.done += n
        if self.done % self.every == 0 or self.done == self.total:
            print(f"{self.label}: step {self.done}/{self.total} {self.postfix}", file=sys.stderr)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        """Nothing to tidy."""


def _progress_bar(total: int, initial: int, label: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _LineBar(total, initial, label)
    return tqdm(total=total, initial=initial, desc=f"finetune {label}", unit="step")
