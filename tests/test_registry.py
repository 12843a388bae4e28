"""One stage registry: the step builder, the stage flows, the CLI, the card and prefect.yaml all
follow ``pipelines.registry``; and the Hub token can come from a Prefect Secret block."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines import registry
from schemas.config import FinewebConfig


def test_build_stage_steps_follows_the_registry():
    from pipelines.fineweb import STAGES, build_stage_steps

    assert (
        STAGES
        == registry.DOCUMENT_STAGES
        == ["read", "urlfilter", "extract", "langid", "quality", "pii"]
    )
    groups = build_stage_steps(FinewebConfig())
    assert [name for name, _ in groups] == STAGES[1:]  # read is the source, not a step
    quality = dict(groups)["quality"]
    assert len(quality) == 4  # gopher repetition, gopher quality, c4, fineweb
    assert [type(s).__name__ for s in dict(groups)["langid"]] == ["LangIdStep"]
    assert [n for n, _ in build_stage_steps(FinewebConfig(), ["pii", "extract"])] == [
        "extract",
        "pii",
    ]
    with pytest.raises(ValueError, match="unknown stage"):
        build_stage_steps(FinewebConfig(), ["langdi"])
    with pytest.raises(ValueError, match="known: read, urlfilter"):
        registry.get("langdi")


def test_each_document_stage_declares_its_config_field_and_reason_prefix():
    cfg = FinewebConfig()
    for stage in registry.STAGES:
        if stage.kind == "document":
            assert isinstance(getattr(cfg, stage.config_field), stage.config_model), stage.name
        for reason in stage.reasons:
            assert ":" in reason
    # the removal reasons the steps really produce carry prefixes some stage declares
    prefixes = {s.name: {r.split(":")[0] for r in s.reasons} for s in registry.STAGES}
    from pipelines.fineweb import build_stage_steps

    for name, steps in build_stage_steps(cfg):
        if not registry.get(name).reasons:  # pii: never removes
            continue
        for step in steps:
            owner = getattr(step, "counts_as", None) or name  # the pre-screen removes for langid
            if prefixes[owner]:
                assert step.reason("x").split(":")[0] in prefixes[owner], (name, step)


def test_flows_cli_and_card_read_the_registry():
    import flows.fineweb as fw
    from flows.cli import app
    from flows.fineweb import STAGE_FLOWS
    from pipelines import card

    assert list(STAGE_FLOWS) == registry.DOCUMENT_STAGES
    for name, f in STAGE_FLOWS.items():
        assert f.name == registry.get(name).flow_name == f"stage-{name}"
        assert getattr(fw, f"stage_{name}_flow") is f  # the deployment entrypoint
        assert f.description == registry.get(name).description
    assert card.STAGE_ORDER == registry.STAGE_ORDER
    assert card._STAGE_WHAT == {s.name: s.description for s in registry.STAGES}
    out = CliRunner().invoke(app, ["stage", "--help"], terminal_width=200).output
    for stage in registry.STAGES:
        assert stage.name in out or stage.name.replace("_", "-") in out, stage.name


def test_hub_token_from_a_prefect_secret_block():
    """A Secret block saved on the (local-mode) Prefect API is what `push --token-secret` uses."""
    from prefect.blocks.system import Secret

    from flows.cli_publish import hub_token_from_secret
    from pipelines.publish import PublishError

    Secret(value="hf_from_block").save("tokenmill-test-hub-token", overwrite=True)
    assert hub_token_from_secret("tokenmill-test-hub-token") == "hf_from_block"
    assert hub_token_from_secret(None) is None
    with pytest.raises(PublishError, match="no Prefect Secret block named 'no-such-block'"):
        hub_token_from_secret("no-such-block")
