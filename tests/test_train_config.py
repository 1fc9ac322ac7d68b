"""Training configuration: coercion by field type, files, precedence, print-config, recipes as data."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX
from slgt2_cli.train.config import (
    Amp,
    Flips,
    Init,
    LossAverage,
    NormSource,
    Recipe,
    Result,
    ScaleSampling,
    TrainConfig,
    read_config_file,
    render_config,
    resolve_config,
    scale_range_for,
)
from slgt2_cli.train.recipe import cross_entropy, initialise
from slgt2_cli.train.runtime import Dist, StepBatches

runner = CliRunner()


def _file(tmp_path: Path, text: str, name: str = "train.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_values_are_coerced_by_field_type(tmp_path):
    cfg = _file(tmp_path, "lr: 1e-3\naugment: 'no'\nbatch-size: '4'\nscale_range: 1,2\namp: BF16\n"
                          "effective_batch: null\nflips: horizontal\ndeterministic: off\n")
    values = read_config_file(cfg)
    assert values["lr"] == 1e-3 and isinstance(values["lr"], float)  # YAML reads 1e-3 as a string
    assert values["augment"] is False and values["deterministic"] is False
    assert values["batch_size"] == 4 and values["scale_range"] == (1.0, 2.0)
    assert values["amp"] is Amp.BF16 and values["flips"] is Flips.HORIZONTAL and values["effective_batch"] is None


@pytest.mark.parametrize("text, key, expect", [
    ("workers: -3\n", "workers", "at least 0"),
    ("iterations: 2.5\n", "iterations", "integer"),
    ("lr: fast\n", "lr", "number"),
    ("lr: 0\n", "lr", "greater than 0"),
    ("augment: maybe\n", "augment", "true or false"),
    ("patch_size: 48\n", "patch_size", "multiple of 32"),
    ("flips: diagonal\n", "flips", "flip-rotate, horizontal"),
    ("scale_range: [2, 1]\n", "scale_range", "increasing"),
    ("preset: huge\n", "preset", "tiny"),
    ("val_fraction: 1.5\n", "val_fraction", "at most 1"),
])
def test_bad_values_name_the_file_and_the_key(tmp_path, text, key, expect):
    cfg = _file(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_config_file(cfg)
    message = str(err.value)
    assert message.startswith(f"{cfg}: {key}: ") and expect in message and "\n" not in message


def test_unknown_keys_and_invocation_keys_are_errors(tmp_path):
    with pytest.raises(InputError, match="unknown configuration key 'batchsize'"):
        read_config_file(_file(tmp_path, "batchsize: 3\n"))
    with pytest.raises(InputError, match="unknown configuration key 'resume'"):
        read_config_file(_file(tmp_path, "resume: true\n"))
    with pytest.raises(InputError, match="unknown section 'extra'"):
        read_config_file(_file(tmp_path, "train: {lr: 0.1}\nextra: 1\n"))


def test_toml_and_precedence(tmp_path):
    toml = _file(tmp_path, 'preset = "small"\nval_every = 7\nlr = "2e-3"\n', "train.toml")
    config = resolve_config(tmp_path, tmp_path / "run", toml, lr=5e-4)
    assert (config.preset, config.val_every, config.patch_size, config.lr) == ("small", 7, 128, 5e-4)
    assert config.iterations == 10000  # the small preset's schedule, under the file and the options


def test_toml_falls_back_to_tomli_on_python_3_10(tmp_path, monkeypatch):
    import tomllib

    used = []
    fake = types.ModuleType("tomli")
    fake.loads = lambda text: used.append(text) or tomllib.loads(text)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` fails as on Python 3.10
    monkeypatch.setitem(sys.modules, "tomli", fake)
    assert read_config_file(_file(tmp_path, "seed = 5\n", "t.toml")) == {"seed": 5} and used
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert "tomli" in pyproject and "python_version < '3.11'" in pyproject


def test_config_is_frozen_keyword_only_and_written_settings_round_trip(tmp_path):
    config = resolve_config(tmp_path, tmp_path / "run", None, preset="tiny", recipe="reference", lr=3e-3)
    with pytest.raises(TypeError):
        TrainConfig(tmp_path, tmp_path)  # keyword-only
    with pytest.raises(AttributeError):
        config.lr = 1.0  # frozen
    cfg = _file(tmp_path, render_config(config), "printed.yaml")
    assert resolve_config(tmp_path, tmp_path / "run", cfg) == config


def test_print_config_prints_and_creates_nothing(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tmp_path / "no-such-data"), "--out", str(run), "--preset", "tiny",
                                 "--lr", "0.02", "--print-config"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)["train"]
    assert printed["lr"] == 0.02 and printed["preset"] == "tiny" and printed["patch_size"] == 64
    assert not run.exists()
    missing = runner.invoke(app, ["train", str(tmp_path)])
    assert missing.exit_code == 2 and "--out" in missing.output


def test_reference_recipe_print_config_shows_every_difference():
    result = runner.invoke(app, ["train", "--recipe", "reference", "--print-config"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)["train"]
    assert printed["recipe"] == "reference" and printed["preset"] == "paper"
    assert (printed["init"], printed["loss_average"], printed["flips"], printed["normalization"],
            printed["result"], printed["effective_batch"], printed["scale_sampling"]) == \
        ("reference", "all", "horizontal", "fixed", "last", 8, "uniform")
    assert "brandenburg 1-2" in result.stdout and "# recipe 'reference' differs" in result.stdout


def test_recipes_and_presets_are_data():
    base = resolve_config(Path("d"), Path("o"), None)
    ref = resolve_config(Path("d"), Path("o"), None, recipe=Recipe.REFERENCE, preset="tiny", flips="flip-rotate")
    assert (base.recipe, base.init, base.loss_average, base.normalization, base.result) == \
        (Recipe.SLGT2, Init.SLGT2, LossAverage.LABELLED, NormSource.COMPUTED, Result.BEST)
    assert ref.flips is Flips.FLIP_ROTATE  # an explicit option beats the recipe
    assert ref.scale_sampling is ScaleSampling.UNIFORM and ref.iterations == 600 and ref.warmup == 0
    assert scale_range_for(ref, "mts12") == (0.5, 2.0) and scale_range_for(ref, "brandenburg") == (1.0, 2.0)
    assert scale_range_for(base, "brandenburg") == (0.5, 2.0)


def test_reference_initialisation_of_conv3d():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(8, 64, (2, 3, 3))
    model = torch.nn.Sequential(conv, torch.nn.Linear(4, 4))
    linear_before = model[1].weight.clone()
    initialise(model, Init.REFERENCE)
    expected = (2.0 / (2 * 3 * 3 * 64)) ** 0.5
    assert abs(conv.weight.std().item() - expected) < 0.05 * expected and abs(conv.weight.mean().item()) < 0.01
    assert torch.count_nonzero(conv.bias) == 0 and torch.equal(model[1].weight, linear_before)


def test_loss_averaged_over_all_pixels_counts_ignored_ones():
    logits = torch.randn(1, 3, 4, 4)
    y = torch.randint(0, 3, (1, 4, 4))
    y[:, :2] = IGNORE_INDEX  # half the pixels ignored
    labelled = cross_entropy(logits, y, None, LossAverage.LABELLED)
    everything = cross_entropy(logits, y, None, LossAverage.ALL)
    assert torch.allclose(everything, labelled / 2)


def test_accumulated_micro_batches_cover_each_step_once():
    d = Dist(rank=1, world=2)
    batches = list(StepBatches(1, 3, 2, d, accumulate=2))
    assert batches == [[10, 11], [14, 15], [18, 19], [22, 23]]  # steps 1 and 2, two micro-batches each
    assert len(StepBatches(1, 3, 2, d, accumulate=2)) == 4


class _TimeMean(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(2, 3, 1)

    def forward(self, x):
        return self.conv(x).mean(2)


def _one_step(micro, average):
    from types import SimpleNamespace

    from slgt2_cli.train.loop import RunState, train_step

    torch.manual_seed(0)
    model = _TimeMean()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    run = SimpleNamespace(optimizer=optimizer, device=torch.device("cpu"), d=Dist(), net=model, amp_dtype=None, frozen=False,
                          weights=None, config=SimpleNamespace(loss_average=average, out=Path("."), freeze_encoder=0),
                          scaler=torch.amp.GradScaler("cuda", enabled=False), state=RunState(),
                          scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0))
    loss = train_step(run, micro)
    return loss, model.conv.weight.detach().clone(), run.state


def test_gradient_accumulation_equals_the_whole_batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, 3, 5, 5, generator=g)
    y = torch.randint(0, 3, (4, 5, 5), generator=g)
    y[0, :3] = IGNORE_INDEX
    whole_loss, whole, _ = _one_step([(x, y)], LossAverage.ALL)
    parts_loss, parts, state = _one_step([(x[:2], y[:2]), (x[2:], y[2:])], LossAverage.ALL)
    assert torch.allclose(whole, parts, atol=1e-6) and abs(whole_loss - parts_loss) < 1e-6
    assert state.step == 1 and state.seen == 4
