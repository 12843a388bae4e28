"""`tokenmill synth sft|refusal|tooluse|rl|prefs|samples|mix|index`: post-training datasets.

Every command builds the generator's pydantic config from its options (``--config FILE.json``
gives the full config; options on the command line override it) and runs it directly, or as its
Prefect flow with ``--prefect``. Generators import lazily so ``--help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli_app import synth_app
from pipelines.sandbox import WEAK_FLAG_HELP

Output = Annotated[Path, typer.Option(help="output directory")]
Seed = Annotated[int, typer.Option(help="seed: same seed, same dataset")]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="JSON or YAML file with the generator's full config")
]
Prefect = Annotated[
    bool, typer.Option(help="run as the Prefect flow (local temporary API unless PREFECT_API_URL)")
]
Docs = Annotated[Path | None, typer.Option(help="corpus dir (DIR/documents/*.parquet)")]
LLMUrl = Annotated[
    str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
]
LLMCkpt = Annotated[Path | None, typer.Option(help="local checkpoint (instead of an endpoint)")]
LLMModel = Annotated[str, typer.Option(help="model name sent to the endpoint")]
LLMKeyEnv = Annotated[str, typer.Option(help="env var holding the endpoint's API key")]
Cache = Annotated[
    Path | None, typer.Option(help="LLM answer cache dir (default: OUTPUT/.llm-cache)")
]


def _llm(
    url: str | None, ckpt: Path | None, model: str, key_env: str, cache: Path | None, output: Path
) -> dict | None:
    if url is None and ckpt is None:
        return None
    cfg: dict = {
        "model": model,
        "api_key_env": key_env,
        "cache_dir": str(cache or output / ".llm-cache"),
    }
    if ckpt is not None:
        cfg.update(backend="local", checkpoint=str(ckpt))
    else:
        cfg.update(backend="openai", base_url=url)
    return cfg


def _run(kind: str, options: dict, config_file: Path | None, prefect: bool) -> None:
    """Validate the generator's config (one-line error naming a bad key), then run it."""
    from importlib import import_module

    from schemas.strict import ConfigError, load_config_file, validate_config

    base = load_config_file(config_file) if config_file else {}
    config = {**base, **{k: v for k, v in options.items() if v is not None}}
    mod_name, cfg_name, fn_name = {
        "sft": ("sft", "SFTConfig", "run_sft"),
        "refusal": ("refusal", "RefusalConfig", "run_refusal"),
        "tooluse": ("tooluse", "ToolUseConfig", "run_tooluse"),
        "rl": ("rl", "RLConfig", "run_rl"),
        "prefs": ("rl", "PrefsConfig", "run_prefs"),
        "mix": ("mix", "MixConfig", "run_mix"),
        "samples": ("samples", "SamplesConfig", "run_samples"),
    }[kind]
    mod = import_module(f"pipelines.synth.{mod_name}")
    try:
        cfg = validate_config(getattr(mod, cfg_name), config, str(config_file or f"synth {kind}"))
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if prefect:
        from flows.cli_app import prefect_local_mode
        from flows.synth import FLOWS

        with prefect_local_mode():
            stats = FLOWS[kind](cfg.model_dump(mode="json"))
    else:
        stats = getattr(mod, fn_name)(cfg)
    summary = {k: v for k, v in stats.items() if not isinstance(v, dict | list)}
    typer.echo(json.dumps(summary, indent=2))


@synth_app.command("sft")
def sft_cmd(
    output: Output,
    seed: Seed = 0,
    identity: Annotated[int | None, typer.Option(help="identity conversations")] = None,
    arithmetic: Annotated[int | None, typer.Option(help="arithmetic tasks")] = None,
    counting: Annotated[int | None, typer.Option(help="counting tasks")] = None,
    spelling: Annotated[int | None, typer.Option(help="spelling tasks")] = None,
    model_name: Annotated[str | None, typer.Option(help="model card: the assistant's name")] = None,
    maker: Annotated[str | None, typer.Option(help="model card: who made it")] = None,
    knowledge_cutoff: Annotated[
        str | None, typer.Option(help="model card: knowledge cutoff")
    ] = None,
    import_openai: Annotated[
        list[Path] | None, typer.Option(help="OpenAI messages JSONL to import")
    ] = None,
    import_sharegpt: Annotated[
        list[Path] | None, typer.Option(help="ShareGPT JSON/JSONL to import")
    ] = None,
    import_oasst: Annotated[
        list[Path] | None, typer.Option(help="oasst trees/messages JSONL to import")
    ] = None,
    generated: Annotated[int | None, typer.Option(help="LLM-generated conversations")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="seed topic (repeatable)")] = None,
    documents: Docs = None,
    llm_url: LLMUrl = None,
    llm_checkpoint: LLMCkpt = None,
    llm_model: LLMModel = "tokenmill",
    llm_key_env: LLMKeyEnv = "OPENAI_API_KEY",
    llm_cache: Cache = None,
    config: ConfigFile = None,
    prefect: Prefect = False,
) -> None:
    """Identity, step-by-step tasks, imported chats and LLM-generated conversations."""
    card = {
        k: v
        for k, v in {
            "name": model_name,
            "maker": maker,
            "knowledge_cutoff": knowledge_cutoff,
        }.items()
        if v
    }
    imports = [
        {"format": f, "path": str(p)}
        for f, ps in (
            ("openai", import_openai),
            ("sharegpt", import_sharegpt),
            ("oasst", import_oasst),
        )
        for p in ps or []
    ]
    _run(
        "sft",
        {
            "output": str(output),
            "seed": seed,
            "identity": identity,
            "arithmetic": arithmetic,
            "counting": counting,
            "spelling": spelling,
            "model_card": card or None,
            "imports": imports or None,
            "generated": generated,
            "topics": topic,
            "documents": str(documents) if documents else None,
            "llm": _llm(llm_url, llm_checkpoint, llm_model, llm_key_env, llm_cache, output),
        },
        config,
        prefect,
    )


@synth_app.command("refusal")
def refusal_cmd(
    output: Output,
    documents: Annotated[Path, typer.Option(help="corpus dir (DIR/documents/*.parquet)")],
    target_url: Annotated[str | None, typer.Option(help="endpoint of the model to probe")] = None,
    target_checkpoint: Annotated[
        Path | None, typer.Option(help="local checkpoint of the model to probe")
    ] = None,
    target_model: LLMModel = "tokenmill",
    judge_url: Annotated[
        str | None, typer.Option(help="LLM judge endpoint (default: span match)")
    ] = None,
    writer_url: Annotated[
        str | None, typer.Option(help="LLM question-writer endpoint (default: rules)")
    ] = None,
    llm_key_env: LLMKeyEnv = "OPENAI_API_KEY",
    llm_cache: Cache = None,
    samples: Annotated[int | None, typer.Option(help="answers sampled per question")] = None,
    max_questions: Annotated[int | None, typer.Option(help="cap on questions")] = None,
    documents_limit: Annotated[
        int | None, typer.Option(help="documents read from the corpus")
    ] = None,
    llm_questions_per_doc: Annotated[
        int | None, typer.Option(help="questions the writer LLM writes per document")
    ] = None,
    cloze_with_writer: Annotated[
        bool | None, typer.Option(help="also use cloze questions with a writer")
    ] = None,
    seed: Seed = 0,
    config: ConfigFile = None,
    prefect: Prefect = False,
) -> None:
    """Knowledge probes: refuse where the target model is consistently wrong. With --writer-url the
    questions are natural ones written by the LLM (checked answerable by the judge); without, cloze
    questions are the offline fallback."""
    target = _llm(target_url, target_checkpoint, target_model, llm_key_env, llm_cache, output)
    if target is None and config is None:
        raise typer.BadParameter("give --target-url or --target-checkpoint")
    _run(
        "refusal",
        {
            "output": str(output),
            "documents": str(documents),
            "seed": seed,
            "target": target,
            "judge": _llm(judge_url, None, target_model, llm_key_env, llm_cache, output),
            "question_writer": _llm(writer_url, None, target_model, llm_key_env, llm_cache, output),
            "samples": samples,
            "max_questions": max_questions,
            "documents_limit": documents_limit,
            "llm_questions_per_doc": llm_questions_per_doc,
            "cloze_with_writer": cloze_with_writer,
        },
        config,
        prefect,
    )


@synth_app.command("tooluse")
def tooluse_cmd(
    output: Output,
    documents: Docs = None,
    index: Annotated[
        Path | None, typer.Option(help="existing search index (default: build OUTPUT/index)")
    ] = None,
    search: Annotated[int | None, typer.Option(help="max search traces")] = None,
    python: Annotated[int | None, typer.Option(help="python traces")] = None,
    python_fix: Annotated[
        int | None, typer.Option(help="python error-recovery traces (fail, fix, rerun)")
    ] = None,
    search_python: Annotated[int | None, typer.Option(help="max search-then-python traces")] = None,
    seed: Seed = 0,
    config: ConfigFile = None,
    prefect: Prefect = False,
    allow_weak_sandbox: Annotated[
        bool, typer.Option("--allow-weak-sandbox", help=WEAK_FLAG_HELP)
    ] = False,
) -> None:
    """Search (with refinement), Python (with error recovery) and search+Python traces, with real
    tool results; also written in OpenAI tool_calls format (OUTPUT/openai/)."""
    if allow_weak_sandbox:
        from pipelines.sandbox import allow_weak_sandbox as allow_weak

        allow_weak()
    _run(
        "tooluse",
        {
            "output": str(output),
            "documents": str(documents) if documents else None,
            "index": str(index) if index else None,
            "search": search if documents or search else 0,
            "search_python": search_python if documents or search_python else 0,
            "python": python,
            "python_fix": python_fix,
            "seed": seed,
        },
        config,
        prefect,
    )


@synth_app.command("rl")
def rl_cmd(
    output: Output,
    word_problems: Annotated[int | None, typer.Option(help="arithmetic word problems")] = None,
    counting: Annotated[int | None, typer.Option(help="counting problems")] = None,
    equations: Annotated[int | None, typer.Option(help="linear equations")] = None,
    test_fraction: Annotated[
        float | None, typer.Option(help="share of prompts in DIR/test")
    ] = None,
    decontaminate: Annotated[
        list[Path] | None, typer.Option(help="training sets to decontaminate test against")
    ] = None,
    seed: Seed = 0,
    config: ConfigFile = None,
    prefect: Prefect = False,
) -> None:
    """Verifiable RL prompts in DIR/train and DIR/test."""
    _run(
        "rl",
        {
            "output": str(output),
            "word_problems": word_problems,
            "counting": counting,
            "equations": equations,
            "test_fraction": test_fraction,
            "seed": seed,
            "decontaminate": [str(d) for d in decontaminate] if decontaminate else None,
        },
        config,
        prefect,
    )


@synth_app.command("prefs")
def prefs_cmd(
    output: Output,
    prompts: Annotated[Path | None, typer.Option(help="an `rl` output dir (train split)")] = None,
    n_prompts: Annotated[int | None, typer.Option(help="prompts to use")] = None,
    samples: Annotated[int | None, typer.Option(help="answers sampled per prompt")] = None,
    llm_url: LLMUrl = None,
    llm_checkpoint: LLMCkpt = None,
    llm_model: LLMModel = "tokenmill",
    llm_key_env: LLMKeyEnv = "OPENAI_API_KEY",
    llm_cache: Cache = None,
    seed: Seed = 0,
    config: ConfigFile = None,
    prefect: Prefect = False,
) -> None:
    """Preference pairs ranked by the verifier (sampled from an LLM, or synthetic without one)."""
    _run(
        "prefs",
        {
            "output": str(output),
            "prompts": str(prompts) if prompts else None,
            "n_prompts": n_prompts,
            "samples": samples,
            "seed": seed,
            "llm": _llm(llm_url, llm_checkpoint, llm_model, llm_key_env, llm_cache, output),
        },
        config,
        prefect,
    )


@synth_app.command("samples")
def samples_cmd(
    output: Output,
    prompts: Annotated[
        Path, typer.Option(help="prompts: an `rl` output dir or a conversation dataset")
    ],
    k: Annotated[int | None, typer.Option(help="responses sampled per prompt")] = None,
    n_prompts: Annotated[int | None, typer.Option(help="use the first N prompts")] = None,
    temperature: Annotated[float | None, typer.Option(help="sampling temperature (> 0)")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="response length cap")] = None,
    llm_url: LLMUrl = None,
    llm_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint", "--llm-checkpoint", help="local checkpoint (instead of an endpoint)"
        ),
    ] = None,
    llm_model: LLMModel = "tokenmill",
    llm_key_env: LLMKeyEnv = "OPENAI_API_KEY",
    llm_cache: Cache = None,
    seed: Seed = 0,
    config: ConfigFile = None,
    prefect: Prefect = False,
) -> None:
    """k responses per prompt from a policy, to be ranked (`tokenmill rank serve|auto`)."""
    llm = _llm(llm_url, llm_checkpoint, llm_model, llm_key_env, llm_cache, output)
    if llm is None and config is None:
        raise typer.BadParameter("give --llm-url or --checkpoint (the policy to sample from)")
    _run(
        "samples",
        {
            "output": str(output),
            "prompts": str(prompts),
            "k": k,
            "n_prompts": n_prompts,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
            "llm": llm,
        },
        config,
        prefect,
    )


@synth_app.command("mix")
def mix_cmd(
    output: Output,
    input: Annotated[
        list[str], typer.Option(help="conversation dataset, optionally DIR:MAX_ROWS (repeatable)")
    ],
    decontaminate: Annotated[
        list[Path] | None, typer.Option(help="RL/eval prompt dirs to decontaminate against")
    ] = None,
    val_fraction: Annotated[float | None, typer.Option(help="share held out in DIR/val")] = None,
    seed: Seed = 0,
    config: ConfigFile = None,
    prefect: Prefect = False,
) -> None:
    """One SFT mixture (DIR/train + DIR/val) from the other generators' outputs."""
    inputs = []
    for spec in input:
        path, _, cap = spec.rpartition(":") if spec.rsplit(":", 1)[-1].isdigit() else (spec, "", "")
        inputs.append({"path": path, "max_rows": int(cap) if cap else None})
    _run(
        "mix",
        {
            "output": str(output),
            "inputs": inputs,
            "seed": seed,
            "val_fraction": val_fraction,
            "decontaminate": [str(d) for d in decontaminate] if decontaminate else None,
        },
        config,
        prefect,
    )


@synth_app.command("index")
def index_cmd(
    documents: Annotated[Path, typer.Option(help="corpus dir (DIR/documents/*.parquet)")],
    output: Output,
    passage_words: Annotated[int, typer.Option(help="words per passage")] = 120,
) -> None:
    """Build the BM25 search index the search tool uses."""
    from pipelines.search import SearchConfig, SearchIndex

    idx = SearchIndex.build(documents, output, SearchConfig(passage_words=passage_words))
    typer.echo(json.dumps({"passages": len(idx), "index": str(output)}))


# `tokenmill rank ...` belongs with the preference data made here; registering it from this
# module keeps flows/cli.py untouched.
from flows import cli_rank  # noqa: E402,F401
