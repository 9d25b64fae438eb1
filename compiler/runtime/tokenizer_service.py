"""The two protocols of the board runtime's tokenizer server, without the HTTP around them.

- plain (old runtimes): `bos_id`, `eos_id`, `encode(text)` with the chat template applied
  over the server's system prompt and the text, `decode(ids)`;
- uid (runtimes with `--url_tokenizer_model`): one chat session per uid; `encode(text,
  last_reply)` appends the board's last reply as the assistant turn and the text as the
  user turn, and answers every id of the conversation and the `diff` beyond the ids the
  board already holds; `decode` holds back text ending in U+FFFD; `reset(system_prompt)`
  starts the conversation over and answers the system prompt's ids.

```python
service = UidService(ChatTokenizer.load(Path("out/qwen2")), system_prompt="You are helpful.")
uid = service.new_uid()
service.reset(uid, None)                      # the board prefills these ids
ids, diff = service.encode(uid, "hi", None)   # ... then only `diff`
```
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from axc.errors import AxcError
from axc.runtime.tokenizer import REPLACEMENT, ChatTokenizer, Message

INVALID_UID = "Invalid uid"
MAX_SESSIONS = 256
"""Sessions kept; the least recently used one is dropped beyond this (its uid turns invalid)."""
MAX_MESSAGES = 4096
MAX_HELD_IDS = 64


class UnknownUid(Exception):
    """A uid the server never gave out (or dropped)."""


@dataclass
class PlainService:
    tokenizer: ChatTokenizer
    system_prompt: str | None = None

    def conversation(self, text: str) -> list[Message]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": self.tokenizer.user_text(text)}]

    def encode(self, text: str, img_prompt: bool = False) -> list[int]:
        if img_prompt:
            raise AxcError("img_prompt: this model has no vision encoder (axc builds language models)")
        return self.tokenizer.encode_messages(self.conversation(text))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


@dataclass
class Session:
    messages: list[Message]
    token_ids: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)


@dataclass
class UidService:
    tokenizer: ChatTokenizer
    system_prompt: str | None = None
    sessions: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def system(self, prompt: str | None) -> list[Message]:
        prompt = self.system_prompt if prompt is None else prompt
        return [{"role": "system", "content": prompt}] if prompt else []

    def new_uid(self) -> str:
        uid = str(uuid.uuid4())
        self.sessions[uid] = Session(self.system(None))
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return uid

    def session(self, uid: object) -> Session:
        if not isinstance(uid, str) or uid not in self.sessions:
            raise UnknownUid(uid)
        self.sessions.move_to_end(uid)
        return self.sessions[uid]

    def encode(self, uid: object, text: str, last_reply: str | None) -> tuple[list[int], list[int]]:
        session = self.session(uid)
        if len(session.messages) + 2 > MAX_MESSAGES:
            raise AxcError(f"the session holds {len(session.messages)} messages; POST /reset to start over")
        messages = list(session.messages)
        cached = session.token_ids
        if last_reply is not None:
            messages.append({"role": "assistant", "content": self.tokenizer.strip_think(last_reply)})
            cached = self.tokenizer.encode_messages(messages, add_generation_prompt=False)
        messages.append({"role": "user", "content": self.tokenizer.user_text(text)})
        ids = self.tokenizer.encode_messages(messages)
        session.messages, session.token_ids = messages, ids
        return ids, ids[len(cached) :]

    def decode(self, uid: object, ids: list[int]) -> str:
        session = self.session(uid)
        pending = session.held + ids
        text = self.tokenizer.decode(pending)
        if text.endswith(REPLACEMENT) and len(pending) < MAX_HELD_IDS:
            session.held = pending
            return ""
        session.held = []
        return text

    def reset(self, uid: object, system_prompt: str | None) -> list[int]:
        session = self.session(uid)
        session.messages = self.system(system_prompt)
        session.token_ids = self.tokenizer.encode_messages(session.messages, add_generation_prompt=False)
        session.held = []
        return session.token_ids
