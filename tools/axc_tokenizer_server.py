"""`axc-tokenizer-server`: the board runtime's tokenizer HTTP server for a model directory.

    axc-tokenizer-server out/qwen2.5-0.5b --port 12345              # uid protocol (ax-llm --url_tokenizer_model)
    axc-tokenizer-server out/qwen2.5-0.5b --protocol plain --port 8080

Serves the directory's tokenizer and chat template in place of the vendor's per-model script.
"""

from __future__ import annotations

from pathlib import Path

from axc.errors import ArgumentParser, AxcError, report_errors


@report_errors("axc-tokenizer-server")
def main() -> None:
    p = ArgumentParser(prog="axc-tokenizer-server", description=__doc__.splitlines()[0])
    p.add_argument("directory", type=Path, help="built (or Hugging Face) model directory with tokenizer files")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a board on the network)")
    p.add_argument("--port", type=int, default=12345, help="port (default 12345)")
    p.add_argument("--protocol", choices=("uid", "plain"), default="uid", help="uid (sessions, default) or plain (old runtimes)")
    p.add_argument("--system_prompt", default=None, help="system prompt of new sessions and of plain /encode (default: the template's own)")
    args = p.parse_args()
    if not 0 <= args.port <= 65535:
        raise AxcError(f"--port {args.port}: expected 0..65535")

    from axc.runtime.http import bind, serve
    from axc.runtime.tokenizer import ChatTokenizer
    from axc.runtime.tokenizer_server import tokenizer_app

    tokenizer = ChatTokenizer.load(args.directory)
    app = tokenizer_app(tokenizer, args.protocol, args.system_prompt)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    template = "chat template" if tokenizer.has_template else "no chat template: contents in order"
    print(f"axc-tokenizer-server: {args.protocol} protocol on http://{host}:{port} ({args.directory}, {template}, "
          f"bos {tokenizer.bos_id}, eos {tokenizer.eos_id})", flush=True)
    serve(app, sock)


if __name__ == "__main__":
    main()
