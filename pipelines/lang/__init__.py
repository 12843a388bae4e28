"""Per-language quality settings, FineWeb-2 style: which thresholds, stop words and word splitting
a document's language gets.

The YAML files in this folder hold FineWeb-2's published per-language filter settings
(``make_settings.py`` says exactly how they were derived); ``_default.yaml`` is the documented
language-independent fallback for any language without a file: never English's settings, whose
English stop words and thresholds removed nearly every German page. English itself keeps the
FineWeb (English) recipe of ``QualityConfig``'s own four filter fields, so English decisions stay
datatrove's.

``LanguageResolver`` maps a document to its settings and records, per shard, which settings each
language used and how many documents it saw (written to the shard's stats).
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import yaml

from schemas.config import LanguageSettings, QualityConfig

HERE = Path(__file__).parent
DEFAULT = "_default"


def shipped_languages() -> list[str]:
    """Languages with their own settings file in the package."""
    return sorted(p.stem for p in HERE.glob("*.yaml") if not p.stem.startswith("_"))


def settings_files_digest(directory: str | None = None) -> dict[str, str]:
    """``{file: sha256[:16]}`` of every settings file a run may read (the shipped ones and those of
    ``directory``): part of a run's fingerprint (``pipelines.runinfo.settings``), so editing a
    language's thresholds makes a re-run redo its shards instead of reusing stale ones."""
    from pipelines.runinfo import file_digest

    out = {}
    folders = [("pipelines/lang", HERE)]
    if directory and Path(directory).is_dir():
        folders.append((str(Path(directory).resolve()), Path(directory)))
    for label, folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            out[f"{label}/{path.name}"] = file_digest(path)
    return out


def _load_file(path: str) -> LanguageSettings:
    st = Path(path).stat()  # an edited file is read again, even by a long-lived worker
    return _load_file_version(path, st.st_mtime_ns, st.st_size)


@cache
def _load_file_version(path: str, mtime_ns: int, size: int) -> LanguageSettings:  # noqa: ARG001
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    try:
        return LanguageSettings.model_validate(data)
    except Exception as e:
        raise ValueError(f"invalid language settings file {path}: {e}") from e


def load_language_settings(language: str, directory: str | None = None) -> LanguageSettings:
    """``directory/<language>.yaml``, else the shipped file, else the language-independent
    ``_default.yaml`` (with ``language`` set to the requested one)."""
    for folder in ([Path(directory)] if directory else []) + [HERE]:
        path = folder / f"{language}.yaml"
        if path.is_file():
            settings = _load_file(str(path))
            if settings.language != language:
                raise ValueError(
                    f"{path} holds settings for {settings.language!r}, not {language!r}"
                )
            return settings
    for folder in ([Path(directory)] if directory else []) + [HERE]:
        path = folder / f"{DEFAULT}.yaml"
        if path.is_file():
            return _load_file(str(path))
    raise FileNotFoundError(f"no {DEFAULT}.yaml in {HERE}")


class LanguageResolver:
    """Document -> ``LanguageSettings``; shared by the quality steps of one worker."""

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        if config.language_settings_dir and not Path(config.language_settings_dir).is_dir():
            raise FileNotFoundError(
                f"quality.language_settings_dir is not a directory: {config.language_settings_dir}"
            )
        self.english = LanguageSettings(
            language="en",
            word_splitter="rules",
            source="QualityConfig (FineWeb English recipe)"
            if config.per_language
            else "QualityConfig (per_language=false: every language)",
            gopher_repetition=config.gopher_repetition,
            gopher_quality=config.gopher_quality,
            c4=config.c4,
            fineweb=config.fineweb,
        )
        self._cache: dict[str, LanguageSettings] = {}
        self.reset()

    def reset(self) -> None:
        """Start a new shard's record."""
        self.docs: Counter[str] = Counter()

    def settings(self, language: str) -> LanguageSettings:
        got = self._cache.get(language)
        if got is None:
            if not self.config.per_language or language == "en":
                got = self.english
            else:
                got = load_language_settings(language, self.config.language_settings_dir)
            self._cache[language] = got
        return got

    def for_doc(self, doc: dict, count: bool = True) -> LanguageSettings:
        """The settings of ``doc``'s language; ``count``: record the document in this shard's
        report (the first quality step does, so each document is counted once)."""
        language = doc.get("language") or self.config.default_language
        if count:
            self.docs[language] += 1
        return self.settings(language)

    def report(self) -> dict[str, dict]:
        """``{language: {"documents": n, "settings": source, "word_splitter": ...}}`` of this shard."""
        out = {}
        for language, n in sorted(self.docs.items()):
            s = self.settings(language)
            out[language] = {
                "documents": n,
                "settings": s.source,
                "settings_language": s.language,
                "word_splitter": s.word_splitter,
            }
        return out
