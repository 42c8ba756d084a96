"""TrainConfig: defaults, presets from REFERENCE.md, one validation path, the schema."""

from __future__ import annotations

import pytest

from bvae_tui.engine.config import (
    OBJECTIVES,
    PRESETS,
    WIDGETS,
    TrainConfig,
    check_field,
    field_info,
    make_config,
    parse_value,
    preset,
    schema,
)
from bvae_tui.engine.errors import ConfigError


def test_defaults_are_valid_and_paper_like():
    cfg = TrainConfig().validate()
    assert (cfg.objective, cfg.beta, cfg.z_dim, cfg.batch_size, cfg.lr) == ("H", 4.0, 10, 64, 1e-4)
    assert (cfg.adam_beta1, cfg.adam_beta2) == (0.9, 0.999)
    assert cfg.architecture == "H"
    assert cfg.replace(objective="B").architecture == "B"
    assert cfg.replace(objective="B", arch="H").architecture == "H"


@pytest.mark.parametrize("name, expected", [
    ("dsprites-H", {"objective": "H", "beta": 4.0}),
    ("dsprites-B", {"objective": "B", "gamma": 100.0, "c_max": 20.0, "c_stop_iter": 100_000,
                    "lr": 5e-4}),
    ("dsprites-B-paper", {"objective": "B", "gamma": 1000.0, "c_max": 25.0}),
    ("celeba-H", {"dataset": "celeba", "objective": "H", "beta": 10.0}),
    ("chairs-H", {"dataset": "chairs", "objective": "H", "beta": 4.0}),
])
def test_presets_match_the_papers(name, expected):
    cfg = make_config(name)
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key


def test_explicit_options_override_the_preset_and_none_means_not_given():
    cfg = make_config("dsprites-B", gamma=50.0, lr=None)
    assert cfg.gamma == 50.0 and cfg.lr == 5e-4


@pytest.mark.parametrize("changes, fragment", [
    ({"beta": -1.0}, "--beta must be at least 0"),
    ({"z_dim": 0}, "--z-dim must be at least 1"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"lr": 0.0}, "--lr must be greater than 0"),
    ({"adam_beta2": 1.0}, "--adam-beta2 must be less than 1"),
    ({"objective": "C"}, "--objective must be one of H, B"),
    ({"recon": "poisson"}, "--recon must be one of"),
    ({"iterations": 2.5}, "--iterations must be a whole number"),
    ({"beta": float("nan")}, "finite"),
    ({"device": "gpu"}, "--device must be cpu, cuda:N or auto"),
    ({"dataset": ""}, "--dataset must not be empty"),
])
def test_validation_names_the_option_in_one_line(changes, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes).validate()
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.field == next(iter(changes))  # the error names its field, too


def test_unknown_preset_and_unknown_field():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; choose one of"):
        preset("nope")
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"betta": 1})


def test_schema_covers_every_field_with_help_and_group():
    fields = schema()
    assert [f.name for f in fields] == list(TrainConfig().to_dict())
    for f in fields:
        assert f.help and f.group and f.option.startswith("--")
        assert f.type in (str, int, float, bool)
    z = next(f for f in fields if f.name == "z_dim")
    assert (z.type, z.min, z.max, z.default) == (int, 1, 512, 10)
    assert all(name in PRESETS for name in ("dsprites-H", "dsprites-B", "dsprites-B-paper"))


def test_parse_value_for_the_tui_form():
    info = {f.name: f for f in schema()}
    assert parse_value(info["c_stop_iter"], "1e5") == 100_000
    assert parse_value(info["compile"], "yes") is True
    assert parse_value(info["beta"], " 2.5 ") == 2.5
    with pytest.raises(ConfigError, match="--z-dim must be a whole number"):
        parse_value(info["z_dim"], "3.5")
    with pytest.raises(ConfigError) as bad:
        parse_value(info["compile"], "maybe")
    assert bad.value.field == "compile"


@pytest.mark.parametrize("name, raw, fragment", [
    ("beta", "-1", "--beta must be at least 0"),
    ("beta", "lots", "--beta must be a number"),
    ("z_dim", "3.5", "--z-dim must be a whole number"),
    ("iterations", "0", "--iterations must be at least 1"),
    ("dataset", "nope", "unknown dataset 'nope'"),
    ("dataset", "folder:", "needs a path"),
    ("device", "gpu", "--device must be cpu, cuda:N or auto"),
])
def test_check_field_raises_a_config_error_naming_its_field(name, raw, fragment):
    with pytest.raises(ConfigError) as info:
        check_field(field_info(name), raw)
    assert info.value.field == name
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_dataset_folder_check_names_the_dataset_field(tmp_path):
    dataset = field_info("dataset")
    for target, fragment in ((tmp_path / "missing", "does not exist"),
                             (tmp_path / "a-file", "is not a folder")):
        (tmp_path / "a-file").write_text("x")
        with pytest.raises(ConfigError, match=fragment) as info:
            check_field(dataset, f"folder:{target}")
        assert info.value.field == "dataset"
    assert check_field(dataset, f"folder:{tmp_path}") == f"folder:{tmp_path}"
    # validate itself does not look at the disk: a saved config outlives its folder.
    TrainConfig(dataset=f"folder:{tmp_path / 'missing'}").validate()


def test_check_field_parses_form_text_into_the_type():
    assert check_field(field_info("c_stop_iter"), "1e5") == 100_000
    assert check_field(field_info("lr"), "0.0005") == 5e-4
    assert check_field(field_info("compile"), True) is True
    assert check_field(field_info("objective"), "B") == "B"


def test_widget_hints_come_from_the_schema():
    hints = {f.name: f.widget for f in schema()}
    assert set(hints.values()) <= set(WIDGETS)
    assert hints["dataset"] == "dataset" and hints["device"] == "device"
    for f in schema():
        if f.name not in ("dataset", "device"):
            expected = "choice" if f.choices else "toggle" if f.type is bool else "text"
            assert f.widget == expected, f.name


def test_objective_fields_apply_only_to_their_objective():
    by_name = {f.name: f for f in schema()}
    assert by_name["beta"].objectives == ("H",)
    assert {n for n, f in by_name.items() if f.objectives == ("B",)} == {
        "gamma", "c_max", "c_stop_iter"}
    for f in schema():
        assert f.objectives is None or set(f.objectives) <= set(OBJECTIVES)
    assert by_name["gamma"].applies({"objective": "B"})
    assert not by_name["gamma"].applies({"objective": "H"})
    assert by_name["beta"].applies({"objective": "H"})
    assert by_name["z_dim"].applies({"objective": "H"}) and by_name["z_dim"].applies({})


def test_option_spellings_and_command_words():
    compile_ = field_info("compile")
    assert (compile_.option, compile_.negative_option) == ("--compile", "--no-compile")
    assert compile_.words(True) == ["--compile"] and compile_.words(False) == ["--no-compile"]
    assert field_info("eval_at_end").words(False) == ["--no-eval-at-end"]
    lr = field_info("lr")
    assert lr.words(1e-4) == ["--lr", "0.0001"]
    assert lr.show(0.00012345678) == "0.00012345678"  # never rounded to 6 digits
    assert field_info("iterations").show(100_000) == "100000"
    assert field_info("c_max").show(20.0) == "20"
