"""The tokenizer of a local Hugging Face folder, read with the `tokenizers` package (and jinja2 for the
chat template) instead of transformers, which `generate` needed for this alone.

Reads tokenizer.json (the fast tokenizer: vocabulary, normalizer, pre-tokenizer, post-processor,
decoder), and from tokenizer_config.json the EOS token, the chat template (or chat_template.jinja
beside it) and whether decoding cleans up spaces, which is what transformers' fast tokenizer takes
from the same files. The chat template is rendered in jinja2's sandbox: it comes from the folder.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

MISSING_PACKAGE = "generate needs the tokenizers and jinja2 packages: pip install tokenizers jinja2"

# transformers' clean_up_tokenization: spaces before punctuation and English contractions.
_CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class Tokenizer:
    """encode, decode, eos_token_id and apply_chat_template of a model folder's tokenizer."""

    def __init__(self, folder: str | Path):
        try:
            from tokenizers import Tokenizer as Backend
        except ImportError:
            raise ValueError(MISSING_PACKAGE) from None
        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise ValueError(f"{folder} has no tokenizer.json (generate needs the model's fast tokenizer file)")
        try:
            self.backend = Backend.from_file(str(path))
        except Exception as exc:  # the Rust side raises its own Exception type for a malformed file
            raise ValueError(f"{path} is not a tokenizer file: {str(exc).splitlines()[0][:200]}") from None
        config = self._config(folder)
        self.eos_token = _token_text(config.get("eos_token"))
        self.eos_token_id = self.backend.token_to_id(self.eos_token) if self.eos_token else None
        self.bos_token = _token_text(config.get("bos_token"))
        self.clean_up = bool(config.get("clean_up_tokenization_spaces", False))
        self.chat_template = self._template(folder, config)

    @staticmethod
    def _config(folder: Path) -> dict:
        path = folder / "tokenizer_config.json"
        if not path.is_file():
            return {}
        try:
            config = json.loads(path.read_text())
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{path} is not JSON: {str(exc)[:200]}") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path} holds a JSON {type(config).__name__}, not an object")
        return config

    @staticmethod
    def _template(folder: Path, config: dict) -> str | None:
        jinja = folder / "chat_template.jinja"  # where transformers >= 4.43 saves it
        if jinja.is_file():
            return jinja.read_text()
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        return template if isinstance(template, str) else None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        text = self.backend.decode(ids, skip_special_tokens=skip_special_tokens)
        if self.clean_up:
            for before, after in _CLEANUPS:
                text = text.replace(before, after)
        return text

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        """The token ids of `messages` rendered by the folder's chat template (special tokens come
        from the template's text, so none are added around it, as transformers does)."""
        if self.chat_template is None:
            raise ValueError("the tokenizer has no chat template (tokenizer_config.json's chat_template or "
                             "chat_template.jinja): drop --chat")
        try:
            from jinja2 import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:
            raise ValueError(MISSING_PACKAGE) from None

        def raise_exception(message):
            raise TemplateError(message)

        # The environment transformers renders chat templates in: blocks trimmed, tojson unescaped.
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        env.globals.update(raise_exception=raise_exception,
                           strftime_now=lambda fmt: datetime.now().strftime(fmt))
        try:
            text = env.from_string(self.chat_template).render(
                messages=messages, add_generation_prompt=add_generation_prompt, bos_token=self.bos_token or "",
                eos_token=self.eos_token or "")
        except TemplateError as exc:
            raise ValueError(f"the chat template failed: {exc}") from None
        return self.encode(text, add_special_tokens=False)
