"""How the command line reads and shows itself: help with every default, argument names, flags without a value
placeholder, choices checked at parse time, usage errors as one line, shell completion."""

from __future__ import annotations

import re

import pytest
import typer.main
from helpers import help_entries
from typer.core import TyperOption
from typer.testing import CliRunner

from slgt2_cli.cli.app import app

runner = CliRunner()
WIDE = {"COLUMNS": "400", "TERMINAL_WIDTH": "400", "NO_COLOR": "1"}
GROUP = typer.main.get_command(app)
COMMANDS = list(GROUP.commands)


def _help(*argv: str) -> str:
    result = runner.invoke(app, [*argv, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def _shows_no_default(p: TyperOption) -> bool:
    """Required options and plain off-flags (off is what a flag means) have no default to show."""
    plain_flag = p.is_flag and not p.secondary_opts and not p.default
    return p.required or plain_flag or "--help" in p.opts


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_shows_its_default(command):
    text = _help(command)
    rows = {names.replace(",", " ").split()[0 if names.startswith("--") else 1]: " ".join(lines)
            for names, lines in help_entries(text).items() if "-" in names}
    for p in GROUP.commands[command].params:
        if not isinstance(p, TyperOption) or _shows_no_default(p):
            continue
        row = rows.get(max(p.opts, key=len))
        assert row is not None, f"{command} {p.opts[0]} not in help:\n{text}"
        assert "[default: " in row, f"{command} {p.opts[0]} shows no default: {row}"
        assert "[default: ]" not in row and "[default: ()]" not in row, row
    assert "<bool>" not in text
    assert not re.search(r"\[default: [^\]]*\]\s*\.", text), "a default eaten by markup leaves ' .'"


@pytest.mark.parametrize("command, usage", [
    ("train", "slgt2 train [OPTIONS] [DATASET]"),
    ("predict", "slgt2 predict [OPTIONS] CHECKPOINT STACKS... OUTPUT"),
    ("evaluate", "slgt2 evaluate [OPTIONS] [PREDICTION] [LABELS]"),
    ("synth", "slgt2 synth [OPTIONS] OUT_DIR"),
])
def test_arguments_render_by_name(command, usage):
    text = _help(command)
    assert usage in text
    assert "{" not in text.splitlines()[1] and "<list[" not in text


def test_root_help_has_no_bool_placeholder_and_offers_completion():
    text = _help()
    assert "<bool>" not in text
    assert "--install-completion" in text and "--show-completion" in text


def test_train_help_defaults_are_the_recipes():
    from slgt2_cli.cli.train import RECIPE_DEFAULTS
    from slgt2_cli.train.config import PRESET_SCHEDULES, defaults

    for name, per_preset in RECIPE_DEFAULTS.items():
        for preset, value in per_preset.items():
            assert {**defaults(), **PRESET_SCHEDULES[preset]}[name] == value, (name, preset)
    text = _help("train")
    assert "preset: tiny 600, small 10000, paper 40000" in text


def _one_line_exit_2(argv: list[str]) -> str:
    result = runner.invoke(app, argv)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("slgt2: error: "), result.output
    return lines[0]


@pytest.mark.parametrize("device", ["meta", "xla", "bogus", "cuda:x", "cuda:-1"])
@pytest.mark.parametrize("command", ["predict ck.pt s.tif o.tif", "evaluate --checkpoint ck.pt --dataset d",
                                     "train d --out r", "demo"])
def test_bad_device_is_refused_at_parse_time(command, device, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line_exit_2([*command.split(), "--device", device])
    assert "--device" in line and repr(device) in line
    assert not any(tmp_path.iterdir()), "nothing may be written before the options are checked"


def test_device_accepts_cuda_index_and_any_case():
    from slgt2_cli.infer.device import parse_device

    assert parse_device("cuda:1") == "cuda:1"
    assert parse_device(" CPU ") == "cpu"
    line = _one_line_exit_2(["predict", "missing.pt", "s.tif", "o.tif", "--device", "cuda:1", "--units", "DB",
                             "--blend", "Gaussian"])
    assert "missing.pt" in line  # parsing passed; the run itself refused the missing checkpoint


@pytest.mark.parametrize("argv, expect", [
    (["train", "d", "--out", "r", "--batch-size", "0"], "'--batch-size': must be at least 1"),
    (["predict", "c", "s", "o", "--batch-size", "x"], "'--batch-size': not a valid integer"),
    (["evaluate", "--checkpoint", "c", "--dataset", "d", "--tile", "0"], "'--tile': must be at least 1"),
    (["evaluate", "--checkpoint", "c", "--dataset", "d", "--stride", "0"], "'--stride': must be at least 1"),
    (["predict", "c", "s", "o", "--blend", "box"], "'box' is not one of 'cosine', 'gaussian'"),
    (["evaluate", "m.tif", "l.tif", "--resampling", "bilinear"], "is not one of 'nearest', 'majority'"),
    (["evaluate", "--checkpoint", "c", "--dataset", "d", "--split", "dev"], "is not one of 'train', 'val', 'test'"),
    (["predict", "ck.pt", "--overwrite", "true", "s.tif", "o.tif"], "--overwrite is a flag and takes no value"),
    (["train", "--quiet", "yes", "d", "--out", "r"], "--quiet is a flag"),
    (["train"], "Invalid value for 'DATASET': missing"),
    (["trian"], "No such command 'trian'"),
])
def test_usage_errors_are_one_line(argv, expect, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line_exit_2(argv)
    assert expect in line, line
    assert f"see 'slgt2 {argv[0]} --help'" in line or "see 'slgt2 --help'" in line


def test_shell_completion_script_and_completions():
    script = runner.invoke(app, ["--show-completion", "bash"])
    assert script.exit_code == 0, script.output
    assert "_SLGT2_COMPLETE=complete_bash" in script.output
    env = {"_SLGT2_COMPLETE": "complete_bash", "COMP_WORDS": "slgt2 predict --blend ", "COMP_CWORD": "3"}
    result = runner.invoke(app, [], env=env, prog_name="slgt2")
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["cosine", "gaussian", "average"]
    env.update(COMP_WORDS="slgt2 ev", COMP_CWORD="1")
    assert runner.invoke(app, [], env=env, prog_name="slgt2").output.split() == ["evaluate"]
