"""`axc-chat` and the engine under it: the built demo in the simulator, multi-turn reuse
of the KV cache (only the new turn is prefilled, same tokens as a fresh prefill), decode to
the context limit, stop strings, and the tool's one-shot and interactive modes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from axc.hostloop import HostLoop
from axc.runtime.chat import Conversation, StopFilter, generate
from axc.runtime.engine import ContextFull, Engine
from axc.runtime.sampling import POST_CONFIG, PostConfig, Sampler
from axc.runtime.tokenizer import ChatTokenizer
from axc.sim.executor import AxModelExecutor

sys.path.insert(0, str(Path(__file__).parent))
from runtime_doubles import EndlessExecutor, PlainExecutor  # noqa: E402

GREEDY = PostConfig(enable_top_k_sampling=True, top_k=1)
TIMEOUT = 300


def test_a_new_turn_prefills_only_its_tokens_and_matches_a_fresh_prefill(runtime_demo_dir: Path) -> None:
    tokenizer = ChatTokenizer.load(runtime_demo_dir)
    chat = Conversation(Engine(runtime_demo_dir), tokenizer, GREEDY)
    first = chat.turn("1+1=")
    assert "".join(first) == "2" and first.stats.finish_reason == "stop"
    chat.remember(first)
    second = chat.turn("2+3=")
    reply = "".join(second)
    conversation = tokenizer.encode_text("1+1=2" + tokenizer.hf.eos_token + "2+3=")
    assert second.stats.prompt_tokens == len(conversation) == 10
    assert second.stats.reused_tokens == 5  # "1+1=2" stays in the cache; EOS and the new turn are prefilled
    fresh = generate(Engine(runtime_demo_dir), tokenizer, chat.messages, Sampler(GREEDY), 32)
    assert fresh.stats.reused_tokens == 0
    assert "".join(fresh) == reply and fresh.generation.tokens == second.generation.tokens


def test_decode_runs_to_the_context_limit(runtime_demo_dir: Path) -> None:
    tokenizer = ChatTokenizer.load(runtime_demo_dir)
    simulator = AxModelExecutor(runtime_demo_dir)
    engine = Engine(runtime_demo_dir, EndlessExecutor(simulator, tokenizer.eos_id), simulator.layout)
    run = generate(engine, tokenizer, [{"role": "user", "content": "1+1="}], Sampler(GREEDY), 1000)
    text = "".join(run)
    assert run.stats.finish_reason == "length" and engine.loop.position == engine.layout.kv_cache_len == 32
    assert run.stats.completion_tokens == 32 - 4 + 1 and len(text) == 29
    with pytest.raises(ContextFull, match="at most"):
        generate(engine, tokenizer, [{"role": "user", "content": "1+" * 20 + "1="}], Sampler(GREEDY), 4)


def test_stop_strings_cut_the_text_and_hold_back_a_possible_start() -> None:
    stop = StopFilter(["</s>", "END"])
    assert [stop.feed(p) for p in ("ab", "c<", "/", "s>tail")] == ["ab", "c", "", ""] and stop.hit
    loose = StopFilter(["END"])
    assert loose.feed("xE") == "x" and loose.feed("x") == "Ex" and loose.flush() == ""
    assert loose.feed("EN") == "" and loose.flush() == "EN"


def run_chat(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("axc-chat")
    return subprocess.run([str(tool), *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def test_one_shot_prints_the_answer_and_the_runtime_figures(runtime_demo_dir: Path) -> None:
    run = run_chat(str(runtime_demo_dir), "--prompt", "12+30=")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "42\n"
    assert "ttft:" in run.stderr and "token/s" in run.stderr and "hit eos" in run.stderr
    assert "board (cost model, AX650): ttft" in run.stderr


def chat_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    from axc.tools import axc_chat

    monkeypatch.setattr(sys, "argv", ["axc-chat", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        axc_chat.main()
    except SystemExit as exit:
        code = int(exit.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_interactive_turns_reset_and_quit(runtime_demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = chat_in_process(monkeypatch, capsys, str(runtime_demo_dir), stdin="1+1=\n/reset\n23+45=\n\nq\n")
    assert code == 0, err
    answers = [line.split(">> ")[-1] for line in out.splitlines() if line.startswith("prompt >> ") and line != "prompt >> "]
    assert answers[:2] == ["2", "68"]
    assert err.count("ttft:") == 2
    assert "0 reused" in err.splitlines()[3]  # /reset: the second turn starts from an empty cache


def test_the_tool_refuses_bad_input(
    tmp_path: Path, runtime_demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, message in (([str(tmp_path / "none")], "is not a directory"), ([str(tmp_path)], "no layer files"),
                          ([str(runtime_demo_dir), "--max_new_tokens", "0"], "--max_new_tokens 0"),
                          ([str(runtime_demo_dir), "--seed", "-1"], "--seed -1: expected 0 or more"),
                          ([str(runtime_demo_dir), "--prompt", "9" * 40], "at most")):
        code, _, err = chat_in_process(monkeypatch, capsys, *args)
        assert code == 1 and message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1


def test_the_shipped_post_config_is_greedy_over_the_simulated_logits(runtime_demo_dir: Path) -> None:
    simulator = AxModelExecutor(runtime_demo_dir)
    loop = HostLoop(simulator, simulator.layout)
    ids = ChatTokenizer.load(runtime_demo_dir).encode_text("7+8=")
    expected = int(np.argmax(loop.logits(loop.prefill(np.asarray(ids))[-1])))
    shipped = PostConfig.load(runtime_demo_dir / POST_CONFIG)
    assert shipped.greedy
    assert Engine(runtime_demo_dir).start(ids, Sampler(shipped), 1, set()).step() == expected


def test_the_engine_keeps_the_cache_as_the_layers_take_it(runtime_demo_dir: Path) -> None:
    """Through the engine's trace, the simulator's bf16 cache and per-token BLAS hold: the
    same tokens and K/V values as through an executor with neither (fp32 cache)."""

    tokenizer = ChatTokenizer.load(runtime_demo_dir)
    simulator = AxModelExecutor(runtime_demo_dir)
    engines = [Engine(runtime_demo_dir), Engine(runtime_demo_dir, PlainExecutor(AxModelExecutor(runtime_demo_dir)), simulator.layout)]
    assert [e.loop.k_cache.dtype for e in engines] == [simulator.cache_dtype, np.float32] and simulator.cache_dtype != np.float32
    runs = [generate(e, tokenizer, [{"role": "user", "content": "1+1="}], Sampler(GREEDY), 8) for e in engines]
    assert runs[0].generation.tokens == runs[1].generation.tokens
    for cache in ("k_cache", "v_cache"):
        assert getattr(engines[0].loop, cache).astype(np.float32).tobytes() == getattr(engines[1].loop, cache).tobytes()
