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
from bvae_tui.engine.objective_info import OBJECTIVE_INFO, STUDY_GRIDS, objective_label


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
    # Locatello et al. 2019's study: arch H, z 10, batch 64, lr 1e-4, 300k steps
    ("dsprites-tcvae", {"objective": "tcvae", "beta": 6.0, "alpha": 1.0, "gamma_dw": 1.0,
                        "architecture": "H", "z_dim": 10, "batch_size": 64, "lr": 1e-4,
                        "iterations": 300_000}),
    ("dsprites-factor", {"objective": "factor", "gamma_tc": 40.0, "disc_lr": 1e-4,
                         "architecture": "H", "lr": 1e-4}),
    ("dsprites-dip-i", {"objective": "dip-i", "lambda_od": 10.0, "dip_lambda_d": 100.0,
                        "architecture": "H"}),
    ("dsprites-dip-ii", {"objective": "dip-ii", "lambda_od": 10.0, "dip_lambda_d": 10.0}),
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
    ({"objective": "C"}, "--objective must be one of H, B, tcvae, factor, dip-i, dip-ii"),
    ({"gamma_tc": -1.0}, "--gamma-tc must be at least 0"),
    ({"lambda_od": -0.5}, "--lambda-od must be at least 0"),
    ({"lambda_d": -2.0}, "--lambda-d must be at least 0"),
    ({"alpha": -1.0}, "--alpha must be at least 0"),
    ({"gamma_dw": -1.0}, "--gamma-dw must be at least 0"),
    ({"disc_lr": 0.0}, "--disc-lr must be greater than 0"),
    ({"tc_estimator": "iwae"}, "--tc-estimator must be one of mss, mws"),
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
    assert by_name["beta"].objectives == ("H", "tcvae")
    own = {o: {n for n, f in by_name.items() if f.objectives == (o,)} for o in OBJECTIVES}
    assert own == {"H": set(), "B": {"gamma", "c_max", "c_stop_iter"},
                   "tcvae": {"alpha", "gamma_dw", "tc_estimator"},
                   "factor": {"gamma_tc", "disc_lr"}, "dip-i": set(), "dip-ii": set()}
    assert by_name["lambda_od"].objectives == by_name["lambda_d"].objectives == (
        "dip-i", "dip-ii")
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


@pytest.mark.parametrize("objective, given, message", [
    ("H", {"gamma_tc": 10.0}, "--gamma-tc is used by objective factor, not H"),
    ("factor", {"beta": 2.0}, "--beta is used by objectives H and tcvae, not factor"),
    ("B", {"lambda_d": 5.0}, "--lambda-d is used by objectives dip-i and dip-ii, not B"),
    ("tcvae", {"gamma": 5.0}, "--gamma is used by objective B, not tcvae"),
    ("dip-i", {"tc_estimator": "mws"}, "--tc-estimator is used by objective tcvae, not dip-i"),
])
def test_a_field_given_for_another_objective_is_one_line_naming_its_objective(
        objective, given, message):
    with pytest.raises(ConfigError) as info:
        make_config(objective=objective, **given)
    assert str(info.value) == message
    assert info.value.field == next(iter(given))


def test_defaults_and_presets_never_trip_the_objective_check():
    for name in PRESETS:
        make_config(name)
    # The preset sets gamma, c_max, c_stop_iter; switching the objective leaves them unused.
    cfg = make_config("dsprites-B", objective="factor", gamma_tc=20.0)
    assert (cfg.objective, cfg.gamma, cfg.gamma_tc) == ("factor", 100.0, 20.0)
    assert make_config("dsprites-factor", objective="dip-ii").objective == "dip-ii"
    # Not given (None) is not given.
    assert make_config(objective="H", gamma_tc=None, lambda_d=None).objective == "H"


@pytest.mark.parametrize("objective, least", [("tcvae", 2), ("factor", 4)])
def test_objectives_that_compare_codes_need_a_batch(objective, least):
    with pytest.raises(ConfigError) as info:
        TrainConfig(objective=objective, batch_size=least - 1).validate()
    assert f"--batch-size must be at least {least} for objective {objective}" in str(info.value)
    assert info.value.field == "batch_size" and "\n" not in str(info.value)
    TrainConfig(objective=objective, batch_size=least).validate()
    TrainConfig(objective="H", batch_size=1).validate()


def test_lambda_d_is_derived_from_lambda_od_unless_given():
    lambda_d = field_info("lambda_d")
    assert lambda_d.nullable and lambda_d.default is None and lambda_d.type is float
    assert lambda_d.parse("") is None and lambda_d.parse(" 3 ") == 3.0
    assert lambda_d.show(None) == "" and lambda_d.words(None) == []
    assert check_field(lambda_d, "") is None
    assert make_config(objective="dip-i", lambda_od=2.0).dip_lambda_d == 20.0
    assert make_config(objective="dip-ii", lambda_od=2.0).dip_lambda_d == 2.0
    assert make_config(objective="dip-i", lambda_od=2.0, lambda_d=7.0).dip_lambda_d == 7.0
    with pytest.raises(ConfigError, match="--lambda-od must be a number"):
        TrainConfig(lambda_od=None).validate()  # only lambda_d may be empty


def test_study_grids_sweep_a_field_of_their_presets_objective():
    assert set(STUDY_GRIDS) >= {"dsprites-tcvae", "dsprites-factor", "dsprites-dip-i",
                                "dsprites-dip-ii"}
    assert STUDY_GRIDS["dsprites-factor"] == ("gamma_tc", (10.0, 20.0, 30.0, 40.0, 50.0, 100.0))
    for name, (key, values) in STUDY_GRIDS.items():
        cfg = make_config(name)
        assert field_info(key).applies(cfg.to_dict()), name
        assert getattr(cfg, key) in values, name  # the preset is a point of its grid
        for value in values:  # every point is a valid run
            cfg.check_given({key: value})
            cfg.replace(**{key: value}).validate()


def test_objective_labels_and_every_objective_described():
    assert set(OBJECTIVE_INFO) == set(OBJECTIVES) == set(field_info("objective").choices)
    assert objective_label({"objective": "H", "beta": 4.0}) == "H β4"
    assert objective_label({"objective": "B", "gamma": 100, "c_max": 20.0}) == "B γ100 C20"
    assert objective_label({"objective": "factor", "gamma_tc": 40.0}) == "factor γ40"
    assert objective_label({"objective": "dip-ii", "lambda_od": 5.0}, ascii=True) == "dip-ii-od5"
    assert objective_label({"objective": "tcvae", "beta": 6.0}, ascii=True) == "tcvae-b6"
    assert objective_label({}) == "?" and objective_label({"objective": "new"}) == "new"
    for info in OBJECTIVE_INFO.values():
        assert f"{info.name}: {info.loss}" in field_info("objective").help
        for key, _symbol, _letter in info.label:
            assert field_info(key).applies({"objective": info.name})
