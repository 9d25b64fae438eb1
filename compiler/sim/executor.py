"""`AxModelExecutor`: the `LayerExecutor` of a built model directory, run by the simulator.

It reads what the board runtime reads: `*_l<i>_together.axmodel` per layer, `*_post.axmodel`
and the raw bf16 embedding table `model.embed_tokens.weight.bfloat16.bin`, and derives the
shape groups from the files (as ax-llm does), so `axc.hostloop.HostLoop` and the check
levels of the build tool can execute the emitted binaries:

```python
executor = AxModelExecutor("out/qwen2.5-0.5b")
loop = HostLoop(executor, executor.layout)
tokens = loop.generate(prompt_ids, max_new_tokens=16, eos={151645})
```
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import ml_dtypes
import numpy as np

from axc.errors import AxcError
from axc.hostloop import GroupLayout
from axc.codegen.payload import CONTAINER_DTYPES
from axc.runtime_contract import EMBED_FILENAME, INDICES, INPUT, K_CACHE, K_CACHE_OUT, MASK, OUTPUT, V_CACHE
from axc.sim.blas_limit import BLAS
from axc.sim.plan import Workspace
from axc.sim.session import AxModelSession

LAYER_FILE = re.compile(r"_l(\d+)_together\.axmodel$")


class AxModelExecutor:
    """Layers, post model and embedding of one directory (sessions open lazily, share
    their fp32 work arrays)."""

    def __init__(self, directory: str | Path, workspace: Workspace | None = None):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise AxcError(f"{directory} is not a directory; pass the build's output directory")
        layers: dict[int, Path] = {}
        for path in self.directory.glob("*_together.axmodel"):
            match = LAYER_FILE.search(path.name)
            if match:
                layers[int(match.group(1))] = path
        posts = sorted(self.directory.glob("*_post.axmodel"))
        if not layers or sorted(layers) != list(range(len(layers))):
            raise AxcError(f"{directory}: no layer files *_l0_together.axmodel .. *_l<n>_together.axmodel (or a gap); rebuild")
        if len(posts) != 1:
            raise AxcError(f"{directory}: expected one *_post.axmodel, found {len(posts)}")
        self.layer_files = [layers[i] for i in range(len(layers))]
        self.post_file = posts[0]
        self.workspace = workspace if workspace is not None else Workspace()
        self.sessions: dict[int, AxModelSession] = {}
        self.post_session: AxModelSession | None = None
        first = self.layer(0)
        groups = first.model.groups
        specs = [{t.name: t for t in (*g.inputs, *g.outputs)} for g in groups]
        try:
            # As the runtime classifies groups: history = mask columns - tokens.
            histories = tuple(s[MASK].shape[-1] - s[INDICES].shape[-1] for s in specs)
            hidden = specs[0][INPUT].shape[-1]
            self.layout = GroupLayout(
                num_layers=len(self.layer_files),
                kv_dim=specs[0][K_CACHE_OUT].shape[-1],
                kv_cache_len=histories[0],
                prefill_len=specs[1][INDICES].shape[-1] if len(specs) > 1 else 0,
                histories=histories,
                hidden_size=hidden,
            )
        except (KeyError, IndexError):
            raise AxcError(f"{self.layer_files[0]}: the groups do not have the runtime's inputs and outputs") from None
        self.cache_dtype = cache_dtype(first, histories)
        """The dtype the layers take the K/V cache in, in which the host loop keeps it."""
        embed = self.directory / EMBED_FILENAME
        if not embed.is_file():
            raise AxcError(f"{directory}: missing {EMBED_FILENAME}; rebuild")
        size = embed.stat().st_size
        if size % (hidden * 2):
            raise AxcError(f"{embed}: {size} bytes is not a whole number of {hidden}-wide bf16 rows")
        self.embed_file, self.vocab, self.hidden = embed, size // (hidden * 2), hidden

    def layer(self, index: int) -> AxModelSession:
        if index not in self.sessions:
            self.sessions[index] = self.checked(AxModelSession(self.layer_files[index], self.workspace))
        return self.sessions[index]

    def checked(self, session: AxModelSession) -> AxModelSession:
        """`session`, a layer that takes the K/V cache in the dtype of the first (the host keeps one cache)."""
        if self.sessions and cache_dtype(session, self.layout.histories) != self.cache_dtype:
            raise AxcError(
                f"{session.where} takes the K/V cache as {cache_dtype(session, self.layout.histories)}, "
                f"{self.layer_files[0].name} as {self.cache_dtype}: the layer files are from different builds; rebuild"
            )
        return session

    def holding(self) -> AbstractContextManager[None]:
        """Held by the host loop over the calls of one token: BLAS set to one thread at most once (`BLAS.hold`)."""
        return BLAS.hold()

    def prepare(self, readers: int = 2) -> None:
        """Open every file and build the plan of every group now rather than on first use;
        `readers` threads read and checksum the files (which releases the GIL) while this
        one builds the plans."""
        missing = [index for index in range(len(self.layer_files)) if index not in self.sessions]
        with ThreadPoolExecutor(max(1, readers)) as pool:
            post = pool.submit(AxModelSession, self.post_file, self.workspace) if self.post_session is None else None
            opened = pool.map(lambda index: AxModelSession(self.layer_files[index], self.workspace), missing)
            for index, session in zip(missing, opened):
                self.sessions[index] = self.checked(session)
                for group in range(session.group_count()):
                    session.plan(group)
            if post is not None:
                self.post_session = post.result()
        for session in (*self.sessions.values(), self.post_model()):
            for group in range(session.group_count()):
                session.plan(group)

    def post_model(self) -> AxModelSession:
        if self.post_session is None:
            self.post_session = AxModelSession(self.post_file, self.workspace)
        return self.post_session

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        """The tokens' rows of the table, read one by one: a memory map would keep the pages
        around them resident (2 MiB folios: a few hundred tokens map the whole table)."""
        ids = np.asarray(token_ids, np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab):
            raise AxcError(f"token id outside the vocabulary of {self.vocab}")
        rows = np.empty((ids.size, self.hidden), ml_dtypes.bfloat16)
        with self.embed_file.open("rb", buffering=0) as stream:
            for row, token in zip(rows, ids):
                stream.seek(int(token) * self.hidden * 2)
                if stream.readinto(row.view(np.uint8)) != self.hidden * 2:
                    raise AxcError(f"{self.embed_file}: cut short (token {token}); rebuild")
        return rows.astype(np.float32)[None]

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.layer(layer).run(group, inputs)

    def post(self, hidden: np.ndarray) -> np.ndarray:
        return self.post_model().run(0, {INPUT: hidden})[OUTPUT]


def cache_dtype(layer: AxModelSession, histories: Sequence[int]) -> np.dtype:
    """The one float dtype the groups with a history take `K_cache` and `V_cache` in (the
    host's cache then holds the very values that are staged: each converted once, when
    its row is stored rather than at every call), else fp32."""
    taken = {
        CONTAINER_DTYPES.get(t.dtype) for group, history in zip(layer.model.groups, histories) if history
        for t in group.inputs if t.name in (K_CACHE, V_CACHE)
    }
    dtype = taken.pop() if len(taken) == 1 else None
    return dtype if dtype is not None and dtype.kind in "fV" else np.dtype(np.float32)
