"""Progress output a log can hold, the demo's summary and interrupt messages."""

from __future__ import annotations

import io
import time
from pathlib import Path

from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.progress import LogProgress, progress_bar

runner = CliRunner()


def test_progress_to_a_file_is_lines_every_few_seconds(monkeypatch):
    monkeypatch.setenv("SLGT2_PROGRESS_SECONDS", "0.2")
    log = io.StringIO()
    bar = progress_bar(total=40, desc="train", unit="it", file=log)
    assert isinstance(bar, LogProgress)
    for i in range(40):
        time.sleep(0.025)
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
    bar.close()
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and "\x1b" not in text
    assert 3 <= len(lines) <= 8, text  # ~1 s of work at one line per 0.2 s, plus the final line
    assert lines[-1].startswith("train: 100% 40/40 it") and "loss=0.025" in lines[-1]
    assert all(line.startswith("train: ") for line in lines)


def test_progress_disabled_writes_nothing_and_a_terminal_gets_tqdm():
    log = io.StringIO()
    with progress_bar(total=3, desc="x", enabled=False, file=log) as bar:
        bar.update(3)
    assert log.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    with progress_bar(total=3, desc="x", file=term) as bar:
        bar.update(3)
    assert not isinstance(bar, LogProgress) and "\r" in term.getvalue()


def test_demo_interrupt_does_not_suggest_resume_and_summary_is_spaced(tmp_path, monkeypatch):
    import slgt2_cli.synth.scenes as synth_scenes
    import slgt2_cli.train.loop as loop

    def fake_synth(out, **_):
        Path(out).mkdir(parents=True)
        return synth_scenes.SynthResult(root=Path(out))

    def stopped(_config):
        raise KeyboardInterrupt("stopped at step 3; resume with --resume")

    monkeypatch.setattr(synth_scenes, "synthesize", fake_synth)
    monkeypatch.setattr(loop, "train", stopped)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--quick", "--device", "cpu"])
    assert result.exit_code == 130, result.output
    last = result.output.strip().splitlines()[-1]
    assert "stopped at step 3" in last and "--resume" not in last and "--overwrite" in last, last


def test_demo_summary_lines(tmp_path, monkeypatch):
    import slgt2_cli.demo.run as demo_run

    def finished(config, say):
        say("[1/4] ...")
        return demo_run.DemoResult(config.out, config.out / "map.tif", config.out / "quicklook.png",
                                   config.out / "run" / "curves.png",
                                   {"miou": 0.5, "overall_accuracy": 0.75, "kappa": 0.6}, 90.0)

    monkeypatch.setattr(demo_run, "run_demo", finished)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'd' / 'run' / 'curves.png'}  (training curves)" in result.output
    assert "scene mIoU 0.500, overall accuracy 0.750, kappa 0.600  (1.5 min)" in result.output


def test_predict_progress_in_a_log_is_lines(tmp_path, monkeypatch):
    from helpers import make_checkpoint, sar_values, write_stack

    monkeypatch.setenv("SLGT2_PROGRESS_SECONDS", "0")
    ck = make_checkpoint(tmp_path / "ck.pt", patch=64, stride=48)
    stack = write_stack(tmp_path / "stack.tif", sar_values(100, 100))
    result = runner.invoke(app, ["predict", str(ck), str(stack), str(tmp_path / "map.tif"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output
    assert "stack.tif: 100% 4/4 tile" in result.output, result.output


def test_synth_reports_the_large_scene_in_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("SLGT2_PROGRESS_SECONDS", "0")
    result = runner.invoke(app, ["synth", str(tmp_path / "d"), "--size", "64", "--scenes", "3", "--scene-size", "32",
                                 "--dates", "3"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "scene: 100% 4.10k/4.10k px" in result.output, result.output
    quiet = runner.invoke(app, ["synth", str(tmp_path / "q"), "--size", "64", "--scenes", "3", "--scene-size", "32",
                                "--dates", "3", "--quiet"])
    assert quiet.exit_code == 0 and "scene: " not in quiet.output.replace("scene:   ", ""), quiet.output
