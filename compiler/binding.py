"""The parameter store of a module: scopes of `axc.scopes` bound to checkpoints."""

from __future__ import annotations

from pathlib import Path
from weakref import WeakKeyDictionary

from xdsl.dialects.builtin import ModuleOp

from axc.dialects.axc import module_scopes, set_module_scopes
from axc.errors import AxcError
from axc.frontend.views import open_model_checkpoint
from axc.params import ParamStore

CREATED_SCOPE = "axc"
"""The scope of parameters that passes create (quantized weights, scales, blobs)."""

_stores: WeakKeyDictionary[ModuleOp, ParamStore] = WeakKeyDictionary()


def store_for(module: ModuleOp) -> ParamStore:
    """The store of `module`, opening each bound checkpoint (headers only) once.

    A GPTQ model directory opens as a `GptqCheckpoint` (dequantized `<prefix>.weight` view).
    """
    store = _stores.get(module)
    if store is None:
        store = ParamStore()
        for scope, path in module_scopes(module).items():
            store.bind(scope, open_model_checkpoint(path))
        _stores[module] = store
    return store


def write_created_params(module: ModuleOp, path: str | Path | None) -> None:
    """Save the parameters passes created to `path` and bind their scope to it.

    The scope may already be bound to an earlier `--params-out` file: its parameters are
    carried over into `path`, so a pipeline can run in several `axc-opt` steps.
    """
    store = _stores.get(module)
    created = store.created() if store is not None else {}
    if not created:
        return
    if path is None:
        count = sum(len(params) for params in created.values())
        raise AxcError(
            f"the passes created {count} parameters; add --params-out FILE.safetensors to keep them"
        )
    path = Path(path).resolve()
    assert store is not None
    for scope, params in created.items():
        earlier = store.checkpoint(scope)
        if earlier is None:
            continue
        for key in earlier.keys():
            if key not in params:
                store.add(scope, key, earlier.get(key))
    store.save(path)
    scopes = module_scopes(module)
    for scope in created:
        scopes[scope] = str(path)
    set_module_scopes(module, scopes)
