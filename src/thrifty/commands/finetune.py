"""`thrifty finetune`: LoRA, progressive or distillation fine-tuning of a small local model."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from thrifty.commands.options import config_option

_EPILOG = """\b
Data: JSONL, one example a line; loss only on the assistant turns:
  {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
  {"prompt": "...", "completion": "..."}
Chats are rendered with the base's chat template, or "Question: …\\nAnswer: …" without one.

\b
Methods:
  lora         PEFT LoRA (r=8, alpha=16, dropout 0.1 on q_proj,v_proj)   → DIR/adapter/
  progressive  last 2 blocks, then the top half (decaying LR), then all  → DIR/model/
  kd           logit distillation from --teacher (same tokenizer), else
               SFT on the teacher's answers (another tokenizer, or --teacher-url) → DIR/model/
DIR also gets thrifty-train.json (the manifest `thrifty export` reads), loss.png,
train-log.jsonl and checkpoints/.

\b
Examples:
  thrifty finetune --base smollm2-135m --data train.jsonl --out runs/faq
  thrifty finetune --base smollm2-135m --data train.jsonl --eval-data held.jsonl \\
      --method progressive --stage-steps 50,50,100 --out runs/faq-full
  thrifty finetune --base smollm2-135m --method kd --teacher ./SmolLM2-360M-Instruct \\
      --data train.jsonl --out runs/kd
  thrifty finetune --base smollm2-135m --method kd --teacher deepseek-chat \\
      --teacher-url http://127.0.0.1:8000/v1 --data train.jsonl --out runs/seq-kd
  thrifty finetune ... --resume          # continue from the last checkpoint in --out
  thrifty export runs/faq --quant q4_k_m --name faq-student
"""


def _stage_steps(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        steps = tuple(int(part) for part in value.split(","))
    except ValueError:
        steps = ()
    if len(steps) != 3 or min(steps) < 0:
        raise click.BadParameter("three step counts, e.g. 50,50,100")
    return steps


@click.command("finetune", epilog=_EPILOG)
@click.option("--base", required=True, help="smollm2-135m, gemma3-270m, a GGUF file or HF dir.")
@click.option(
    "--data", required=True, type=click.Path(path_type=Path), help="Training JSONL."
)  # fmt: skip
@click.option(
    "--method", type=click.Choice(["lora", "progressive", "kd"]), default="lora", show_default=True
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output DIR."
)
@click.option("--eval-data", type=click.Path(path_type=Path), help="Held-out JSONL: final loss.")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True),
    help="Learning rate [default: lora 2e-4, progressive 1e-4 (stage 1), kd 5e-5].",
)  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--max-len", type=click.IntRange(min=8), default=512, show_default=True,
    help="Tokens per example; longer ones are cut.",
)  # fmt: skip
@click.option(
    "--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
    help="Micro-batches per optimizer step.",
)  # fmt: skip
@click.option(
    "--save-every", type=click.IntRange(min=1), default=50, show_default=True,
    help="Checkpoint every N steps.",
)  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads [default: every core].")
@click.option("--lora-r", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-dropout", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option(
    "--lora-targets", default="q_proj,v_proj", show_default=True, help="Modules, comma-separated."
)
@click.option(
    "--stage-steps", callback=_stage_steps,
    help="progressive: steps of stages 1,2,3 [default: the epochs split in thirds].",
)  # fmt: skip
@click.option("--stage2-lr", type=float, default=1e-5, show_default=True, help="Decays to 1/10.")
@click.option("--stage3-lr", type=float, default=5e-6, show_default=True)
@click.option("--stage3-accum", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--teacher", help="kd: a local model (name, GGUF, HF dir), or a name at --teacher-url."
)
@click.option("--teacher-url", help="kd: the teacher's OpenAI-compatible endpoint (…/v1).")
@click.option(
    "--teacher-api-key",
    default=lambda: os.environ.get("THRIFTY_API_KEY") or os.environ.get("OPENAI_API_KEY"),
    show_default="$THRIFTY_API_KEY or $OPENAI_API_KEY",
)
@click.option("--teacher-max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--kd-alpha", type=click.FloatRange(0, 1), default=0.7, show_default=True)
@click.option(
    "--kd-temperature", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True
)
@config_option
def finetune(config: str | None, lora_targets: str, **options: Any) -> None:
    """Fine-tune a small local model on chat data, offline, on the CPU (or the GPU if any).

    Writes the adapter or the full weights into --out, with a manifest that `thrifty export`
    turns into a GGUF for `thrifty serve`.
    """
    from thrifty.train import MissingTrainExtra, require_extra

    try:
        require_extra()
    except MissingTrainExtra as exc:
        raise click.ClickException(str(exc)) from None
    _run(config, tuple(t.strip() for t in lora_targets.split(",") if t.strip()), options)


def _run(config: str | None, lora_targets: tuple[str, ...], options: dict[str, Any]) -> None:
    from thrifty.backends.models import ModelUnavailable
    from thrifty.commands.options import cli_settings
    from thrifty.train.data import DataError
    from thrifty.train.teacher import TeacherError
    from thrifty.train.trainer import FinetuneConfig, TrainError, finetune

    home: Path = cli_settings(config).home
    run = FinetuneConfig(lora_targets=lora_targets, **options)
    started = time.monotonic()
    try:
        manifest = finetune(run, home, say=lambda text: click.echo(text, err=True))
    except (DataError, TrainError, TeacherError, ModelUnavailable, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    eval_part = (
        f", held-out loss {manifest['eval_loss']:.4f}" if manifest["eval_loss"] is not None else ""
    )
    click.echo(
        f"{manifest['method']}: {manifest['steps']} steps in {time.monotonic() - started:.0f}s, "
        f"final loss {manifest['final_loss']:.4f}{eval_part} → {run.out}"
    )
    click.echo(f"next: thrifty export {run.out} --quant q4_k_m --name NAME", err=True)
