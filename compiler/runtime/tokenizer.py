"""The tokenizer of a built (or Hugging Face) directory, as the board's tokenizer server
uses it: the chat template over a conversation, ids, and text decoded incrementally.

A tokenizer without a chat template (the demo's character tokenizer) renders a
conversation as its contents in order, each assistant turn closed by the EOS token, so
multi-turn prompts still extend the previous ones token for token.

```python
tokenizer = ChatTokenizer.load(Path("out/qwen2"))
ids = tokenizer.encode_messages([{"role": "user", "content": "1+1="}])
stream = TextStream(tokenizer)
text = "".join(stream.push(t) for t in generated)
```
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axc.errors import AxcError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
REPLACEMENT = "\ufffd"
MAX_HELD_TOKENS = 8
"""Tokens held back while the text ends in U+FFFD before giving up (an invalid sequence)."""


def model_type_of(directory: Path) -> str:
    """`model_type` of an HF `config.json`, or `tokenizer_type` of the runtime's."""
    try:
        data = json.loads((directory / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    value = data.get("model_type") or data.get("tokenizer_type") or ""
    return value if isinstance(value, str) else ""


@dataclass
class ChatTokenizer:
    """An `AutoTokenizer` with the chat conventions of the board runtime's tokenizer server."""

    hf: Any
    directory: Path
    no_think: bool = False
    """Qwen3: the vendor's servers append `/no_think` to prompts and strip think tags."""

    @classmethod
    def load(cls, directory: Path) -> ChatTokenizer:
        if not directory.is_dir():
            raise AxcError(f"{directory} is not a directory; pass a built (or Hugging Face) model directory")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise AxcError(f"{directory}: cannot load its tokenizer ({first}); the directory needs tokenizer.json or the HF tokenizer files") from None
        hf.model_max_length = 1 << 30  # the build's KV cache bounds prompts, not the tokenizer's config
        return cls(hf, directory, model_type_of(directory).lower().startswith("qwen3"))  # the runtime's config says "Qwen3"

    @property
    def has_template(self) -> bool:
        return bool(getattr(self.hf, "chat_template", None))

    @property
    def bos_id(self) -> int:
        return -1 if self.hf.bos_token_id is None else int(self.hf.bos_token_id)

    @property
    def eos_id(self) -> int:
        return -1 if self.hf.eos_token_id is None else int(self.hf.eos_token_id)

    def stop_ids(self) -> set[int]:
        """The tokenizer's EOS and the `eos_token_id`s of the directory's generation config."""
        ids = {self.eos_id} if self.eos_id >= 0 else set()
        for name in ("generation_config.json", "config.json"):
            try:
                data = json.loads((self.directory / name).read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            value = data.get("eos_token_id") if isinstance(data, dict) else None
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, int) and not isinstance(item, bool) and 0 <= item:
                    ids.add(item)
        return ids

    def render(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The prompt text of a conversation (the chat template, or the contents in order)."""
        if not self.has_template:
            eos = self.hf.eos_token or ""
            return "".join(m["content"] + (eos if m["role"] == "assistant" else "") for m in messages)
        if not messages:
            return ""
        try:
            text = self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        except Exception as error:  # noqa: BLE001 - jinja2 raises its own errors (and the template's raise_exception)
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise AxcError(f"the chat template rejects this conversation: {first}") from None
        return str(text)

    def encode_text(self, text: str) -> list[int]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise AxcError("the text holds a lone UTF-16 surrogate, which is not Unicode text") from None
        return [int(t) for t in self.hf(text, add_special_tokens=False)["input_ids"]]

    def encode_messages(self, messages: list[Message], add_generation_prompt: bool = True) -> list[int]:
        """Ids of the rendered conversation (what transformers' `apply_chat_template` gives)."""
        return self.encode_text(self.render(messages, add_generation_prompt))

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        vocab = len(self.hf)
        if any(not 0 <= t < vocab for t in ids):
            raise AxcError(f"token id outside the tokenizer's vocabulary of {vocab}")
        return str(self.hf.decode(ids, skip_special_tokens=skip_special_tokens))

    def strip_think(self, text: str) -> str:
        return text.replace("<think>", "").replace("</think>", "").strip("\n") if self.no_think else text

    def user_text(self, text: str) -> str:
        return text if not self.no_think or text.endswith("/no_think") else text + "/no_think"


def check_messages(messages: Any) -> list[Message]:
    """A conversation as a list of `{"role", "content"}` with string contents (one-line errors)."""
    if not isinstance(messages, list) or not messages:
        raise AxcError("messages must be a non-empty list of {role, content} objects")
    checked: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise AxcError(f"messages[{index}] must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise AxcError(f"messages[{index}].role must be one of {', '.join(ROLES)}")
        if isinstance(content, list):  # OpenAI content parts: text only
            texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
                raise AxcError(f"messages[{index}].content: only text parts are supported")
            content = "".join(texts)  # type: ignore[arg-type]  # the check above made every part a str
        if not isinstance(content, str):
            raise AxcError(f"messages[{index}].content must be a string")
        checked.append({"role": role, "content": content})
    return checked


@dataclass
class TextStream:
    """Text of ids pushed one at a time: each push returns the new text, holding it back
    while the decoded text ends in U+FFFD (an incomplete UTF-8 sequence)."""

    tokenizer: ChatTokenizer
    skip_special_tokens: bool = True
    ids: list[int] = field(default_factory=list)
    emitted: int = 0
    held: int = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, self.skip_special_tokens)
        if text.endswith(REPLACEMENT) and self.held < MAX_HELD_TOKENS:
            self.held += 1
            return ""
        self.held = 0
        delta, self.emitted = text[self.emitted :], len(text)
        return delta

    def flush(self) -> str:
        """Whatever is still held back (at the end of a generation)."""
        text = self.tokenizer.decode(self.ids, self.skip_special_tokens)
        delta, self.emitted, self.held = text[self.emitted :], len(text), 0
        return delta
