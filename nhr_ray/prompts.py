"""The prompt files of prompts/ (packaged as nhr_ray/_prompts), filled without format-string pitfalls.

Templates use `$name` placeholders (string.Template). Values are inserted verbatim: braces, quotes,
dollar signs and newlines in user or model text survive unchanged and are never re-interpreted.
"""

from __future__ import annotations

import functools
import string
from importlib import resources
from pathlib import Path

PROMPT_NAMES = ["plausibility", "edit_scores", "unwanted_change", "aesthetics", "inverse"]


def prompts_dir() -> Path:
    packaged = resources.files("nhr_ray").joinpath("_prompts")
    if packaged.is_dir():  # installed wheel
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "prompts"  # source checkout / editable install


@functools.lru_cache(maxsize=None)
def template(name: str, directory: str | None = None) -> string.Template:
    path = Path(directory or prompts_dir()) / f"{name}.md"
    if not path.is_file():
        raise FileNotFoundError(f"prompt {name!r} not found at {path}")
    return string.Template(path.read_text())


def render(name: str, directory: str | None = None, **values: object) -> str:
    """Fill a prompt. A placeholder without a value is an error; values are never parsed."""
    return template(name, directory).substitute({k: str(v) for k, v in values.items()})
