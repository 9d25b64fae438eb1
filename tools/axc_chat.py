"""`axc-chat`: chat with a built directory on the simulator, as the board runtime does.

    axc-chat out/qwen2.5-0.5b                        # interactive; q to quit, /reset to start over
    axc-chat out/qwen2.5-0.5b --prompt "1+1="        # one shot

System prompt and chat template, prefill in chunks over the build's shape groups, decode to
EOS or the context limit, sampling from post_config.json, the KV cache kept between turns
(only the new turn is prefilled), streamed text; after each reply the runtime's `ttft` and
`token/s` lines (on stderr) beside the cost model's predicted board figures.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # as axc-llm-build: one BLAS thread is fastest for the simulator

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from axc.errors import ArgumentParser, AxcError, report_errors  # noqa: E402

QUIT = ("q", "/q", "/exit")


@report_errors("axc-chat")
def main() -> None:
    p = ArgumentParser(prog="axc-chat", description=__doc__.splitlines()[0])
    p.add_argument("directory", type=Path, help="the output directory of axc-llm-build")
    p.add_argument("--prompt", default=None, help="answer this one prompt and exit")
    p.add_argument("--system_prompt", default=None, help="system prompt (default: the chat template's own)")
    p.add_argument("--max_new_tokens", type=int, default=None, help="reply length limit (default: the context limit)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampler (post_config.json may sample)")
    args = p.parse_args()
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise AxcError(f"--max_new_tokens {args.max_new_tokens}: expected 1 or more")
    if args.seed is not None and args.seed < 0:
        raise AxcError(f"--seed {args.seed}: expected 0 or more")

    from axc.runtime.chat import Conversation
    from axc.runtime.engine import ContextFull, Engine, describe
    from axc.runtime.sampling import POST_CONFIG, PostConfig
    from axc.runtime.tokenizer import ChatTokenizer

    engine = Engine(args.directory)
    tokenizer = ChatTokenizer.load(args.directory)
    chat = Conversation(engine, tokenizer, PostConfig.load(args.directory / POST_CONFIG), args.system_prompt, args.seed)

    def reply(text: str) -> None:
        try:
            run = chat.turn(text, args.max_new_tokens)
        except ContextFull:
            if args.prompt is not None or len(chat.messages) <= 1:
                raise
            print("context full: starting a new conversation", file=sys.stderr)
            chat.clear()
            run = chat.turn(text, args.max_new_tokens)
        try:
            for piece in run:
                print(piece, end="", flush=True)
        except KeyboardInterrupt:
            run.generation.finish("abort")
            print(" [stopped]", end="")
        print(flush=True)
        chat.remember(run)
        for line in describe(run.stats, engine.figures):
            print(line, file=sys.stderr, flush=True)

    if args.prompt is not None:
        reply(args.prompt)
        return
    print('Type "q" to exit, "/reset" to start a new conversation, Ctrl+C to stop a reply', flush=True)
    while True:
        try:
            line = input("prompt >> ")
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print()
            return
        if line.strip() in QUIT:
            return
        if line.strip() == "/reset":
            chat.clear()
            engine.reset()
            continue
        if line.strip():
            try:
                reply(line)
            except ContextFull as error:
                print(f"axc-chat: error: {error}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
