"""`axc-serve`: an OpenAI-compatible server over a built directory, on the simulator.

    axc-serve out/qwen2.5-0.5b --port 8000
    curl http://127.0.0.1:8000/v1/chat/completions -d '{"messages": [{"role": "user", "content": "hi"}]}'

Like `axllm serve` on the board: one request on the model at a time, a bounded queue (429
beyond), sampling from post_config.json overridden per request.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # as axc-llm-build: one BLAS thread is fastest for the simulator

from pathlib import Path  # noqa: E402

from axc.errors import ArgumentParser, AxcError, report_errors  # noqa: E402


@report_errors("axc-serve")
def main() -> None:
    p = ArgumentParser(prog="axc-serve", description=__doc__.splitlines()[0])
    p.add_argument("directory", type=Path, help="the output directory of axc-llm-build")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--queue", type=int, default=4, help="requests that may wait while one runs; more get 429 (default 4)")
    p.add_argument("--model_name", default=None, help="model id to serve (default: config.json model_name)")
    args = p.parse_args()
    if not 0 <= args.port <= 65535:
        raise AxcError(f"--port {args.port}: expected 0..65535")
    if args.queue < 0:
        raise AxcError(f"--queue {args.queue}: expected 0 or more")

    from axc.runtime.http import bind, serve
    from axc.runtime.openai_server import Model, ServeOptions, openai_app

    model = Model.load(args.directory, args.model_name)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"axc-serve: model '{model.name}' on http://{host}:{port}/v1 (simulator, {model.engine.layout.kv_cache_len} "
          f"tokens of context, queue {args.queue})", flush=True)
    serve(openai_app(model, ServeOptions(queue_size=args.queue)), sock)


if __name__ == "__main__":
    main()
