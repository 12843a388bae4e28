"""Strict configs: an unknown key is an error naming the key, where it is and the closest valid
key (one line), in JSON and YAML files alike; every config model in schemas/ forbids extras."""

from __future__ import annotations

import inspect

import pytest
from pydantic import BaseModel

import schemas.config
from schemas.config import DedupConfig, FinewebConfig, TokenizeConfig
from schemas.strict import ConfigError, config_from_file, load_config_file, validate_config


def test_every_config_model_in_schemas_forbids_unknown_keys():
    models = [
        m
        for _, m in inspect.getmembers(schemas.config, inspect.isclass)
        if issubclass(m, BaseModel) and m.__module__ == "schemas.config"
    ]
    assert len(models) >= 13
    for model in models:
        assert model.model_config.get("extra") == "forbid", model.__name__


@pytest.mark.parametrize(
    "data,expected",
    [
        (
            {"langid": {"languagse": ["de"]}},
            "x.yaml: unknown key 'langid.languagse'; did you mean 'langid.languages'?",
        ),
        (
            {"quality": {"c4": {"min_num_sentencs": 3}}},
            "x.yaml: unknown key 'quality.c4.min_num_sentencs'; did you mean "
            "'quality.c4.min_num_sentences'?",
        ),
        ({"wokers": 2}, "x.yaml: unknown key 'wokers'; did you mean 'workers'?"),
    ],
)
def test_unknown_key_names_the_key_and_the_closest_valid_one(data, expected):
    with pytest.raises(ConfigError) as exc:
        validate_config(FinewebConfig, data, "x.yaml")
    assert str(exc.value) == expected


def test_unknown_key_without_a_close_match_lists_the_valid_keys():
    with pytest.raises(ConfigError) as exc:
        validate_config(DedupConfig, {"setps": 5}, "d.json")
    msg = str(exc.value)
    assert "\n" not in msg and "unknown key 'setps'" in msg and "bands" in msg


def test_wrong_type_is_one_line_with_the_location():
    with pytest.raises(ConfigError) as exc:
        validate_config(TokenizeConfig, {"shard_tokens": "many", "seed": "x"}, "t.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("t.yaml: 'shard_tokens'") and "1 more problem" in msg


@pytest.mark.parametrize(
    "name,text",
    [
        ("c.json", '{"langid": {"languages": ["de", "fr"]}, "workers": 3}'),
        ("c.yaml", "langid:\n  languages: [de, fr]\nworkers: 3\n"),
        ("c.yml", "langid: {languages: [de, fr]}\nworkers: 3\n"),
    ],
)
def test_json_and_yaml_files_give_the_same_config(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    cfg = config_from_file(FinewebConfig, tmp_path / name)
    assert cfg.langid.languages == ["de", "fr"] and cfg.workers == 3


def test_bad_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(tmp_path / "bad.json")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(tmp_path / "list.yaml")
    (tmp_path / "typo.yaml").write_text("langid:\n  languagse: [de]\n")
    with pytest.raises(ConfigError, match="typo.yaml: unknown key 'langid.languagse'"):
        config_from_file(FinewebConfig, tmp_path / "typo.yaml")


def test_training_config_typo_names_the_closest_key():
    from trainer.config import TrainConfig

    with pytest.raises(ConfigError) as exc:
        validate_config(TrainConfig, {"setps": 5}, "train.yaml")
    assert str(exc.value) == "train.yaml: unknown key 'setps'; did you mean 'steps'?"
