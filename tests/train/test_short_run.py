"""A run too short to learn says so, and says what to raise; its loss plot shows points."""

from __future__ import annotations

from pathlib import Path

from matplotlib.text import Text

from thrifty.train.trainer import MIN_STEPS, FinetuneConfig, finetune, loss_figure, too_short


def test_a_two_step_run_warns_and_names_the_epochs_that_would_learn(
    tiny: Path, train_file: Path, tmp_path: Path
) -> None:
    said: list[str] = []
    out = tmp_path / "run"
    config = FinetuneConfig(base=str(tiny), data=train_file, out=out, batch_size=8)
    manifest = finetune(config, tmp_path, said.append)
    assert manifest["steps"] == 2  # 16 examples, batch 8, one epoch
    warning = next(line for line in said if line.startswith("warning:"))
    assert "only 2 optimizer steps (16 examples, batch 8, 1 epoch)" in warning
    assert "raise --epochs to 10" in warning  # 10 epochs × 2 steps = MIN_STEPS
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")


def test_enough_steps_do_not_warn_and_progressive_counts_its_stages() -> None:
    config = FinetuneConfig(base="b", data=Path("d"), out=Path("o"), batch_size=4, epochs=5)
    assert too_short(MIN_STEPS, 16, 4, config) is None
    progressive = FinetuneConfig(base="b", data=Path("d"), out=Path("o"), method="progressive")
    warning = too_short(3, 16, 2, progressive)
    assert warning is not None and "raise --epochs to 13" in warning  # 13 epochs: 20 steps
    fixed = FinetuneConfig(
        base="b", data=Path("d"), out=Path("o"), method="progressive", stage_steps=(1, 1, 1)
    )
    assert "raise --stage-steps" in (too_short(3, 16, 2, fixed) or "")


def _texts(losses: list[float]) -> list[str]:
    figure = loss_figure(losses, "t")
    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


def test_a_short_runs_loss_is_drawn_as_points_with_a_note() -> None:
    figure = loss_figure([2.5, 2.4], "short")
    (line,) = figure.axes[0].get_lines()
    assert line.get_linestyle() == "None" and line.get_marker() == "o"
    assert list(line.get_ydata()) == [2.5, 2.4]
    assert any("only 2 steps" in text for text in _texts([2.5, 2.4]))
    long = [3.0 - i / 100 for i in range(MIN_STEPS)]
    (curve,) = loss_figure(long, "long").axes[0].get_lines()
    assert curve.get_linestyle() == "-"
    assert not any("only" in text for text in _texts(long))
