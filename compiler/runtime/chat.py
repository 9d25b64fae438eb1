"""Text generation over the engine, shared by `axc-chat` and `axc-serve`: the chat
template, streamed text (held back while incomplete UTF-8 or a possible stop string), and a
conversation whose turns reuse the KV cache.

```python
chat = Conversation(engine, tokenizer, post_config, system_prompt="You are helpful.")
run = chat.turn("1+1=")
for piece in run:          # streamed text
    print(piece, end="")
run.text, run.stats.finish_reason
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from axc.runtime.engine import Engine, Generation, GenerationStats
from axc.runtime.sampling import PostConfig, Sampler
from axc.runtime.tokenizer import ChatTokenizer, Message, TextStream


@dataclass
class StopFilter:
    """Cuts text at the first stop string; holds back a tail that may begin one."""

    stops: list[str]
    pending: str = ""
    hit: bool = False

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        self.pending += text
        cut = min((i for i in (self.pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit = True
            out, self.pending = self.pending[:cut], ""
            return out
        keep = max((n for s in self.stops for n in range(min(len(s) - 1, len(self.pending)), 0, -1) if self.pending.endswith(s[:n])), default=0)
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out) :]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.hit else self.pending), ""
        return out


@dataclass
class TextGeneration:
    """A generation as text deltas: iterate, or call `step()` (None once finished)."""

    generation: Generation
    tokenizer: ChatTokenizer
    stops: list[str] = field(default_factory=list)
    text: str = ""

    def __post_init__(self) -> None:
        self.stream = TextStream(self.tokenizer)
        self.filter = StopFilter([s for s in self.stops if s])

    @property
    def stats(self) -> GenerationStats:
        return self.generation.stats

    def step(self) -> str | None:
        if self.generation.done:
            return None
        token = self.generation.step()
        if token is None:
            out = self.filter.feed(self.stream.flush()) + self.filter.flush()
        else:
            out = self.filter.feed(self.stream.push(token))
            if self.filter.hit:
                self.generation.finish("stop")
        self.text += out
        return out

    def __iter__(self) -> Iterator[str]:
        while (piece := self.step()) is not None:
            if piece:
                yield piece


def generate(
    engine: Engine, tokenizer: ChatTokenizer, messages: list[Message], sampler: Sampler,
    max_new_tokens: int, stops: list[str] | None = None,
) -> TextGeneration:
    """Render `messages`, place them in the cache (reusing its prefix) and start generating."""
    prompt = tokenizer.encode_messages(messages)
    generation = engine.start(prompt, sampler, max_new_tokens, tokenizer.stop_ids())
    return TextGeneration(generation, tokenizer, stops or [])


@dataclass
class Conversation:
    """Turns of one chat: the system prompt, the history, one engine."""

    engine: Engine
    tokenizer: ChatTokenizer
    post: PostConfig
    system_prompt: str | None = None
    seed: int | None = None
    messages: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sampler = Sampler(self.post, self.seed)
        self.clear()

    def clear(self) -> None:
        self.messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

    def turn(self, text: str, max_new_tokens: int | None = None) -> TextGeneration:
        """Start the reply to `text` (add it to the history once consumed: `remember`)."""
        limit = self.engine.layout.kv_cache_len if max_new_tokens is None else max_new_tokens
        messages = [*self.messages, {"role": "user", "content": self.tokenizer.user_text(text)}]
        run = generate(self.engine, self.tokenizer, messages, self.sampler, limit)
        self.messages = messages
        return run

    def remember(self, run: TextGeneration) -> None:
        self.messages.append({"role": "assistant", "content": self.tokenizer.strip_think(run.text)})
