"""`axc-serve` with real clients: the `openai` SDK against the OpenAI-compatible server on
loopback, running the built demo model in the simulator (held-out sums), a bounded load
test, OpenAI-style errors, the queue bound and a client that disconnects mid-stream."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from axc.runtime.engine import Engine
from axc.runtime.http import ServerThread
from axc.runtime.openai_server import Model, ServeOptions, openai_app
from axc.runtime.sampling import POST_CONFIG, PostConfig
from axc.runtime.tokenizer import ChatTokenizer
from axc.sim.executor import AxModelExecutor

sys.path.insert(0, str(Path(__file__).parent))
from runtime_doubles import EndlessExecutor  # noqa: E402

openai = pytest.importorskip("openai")
DEMO = Path(__file__).resolve().parents[2] / "demo" / "qwen2-add"
HELDOUT = [tuple(p) for p in json.loads((DEMO / "heldout.json").read_text())]
TIMEOUT = 60.0
CLIENTS, REQUESTS = 8, 5


def ask(a: int, b: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{a}+{b}="}]


@pytest.fixture(scope="module")
def server(runtime_demo_dir: Path):
    with ServerThread(openai_app(Model.load(runtime_demo_dir), ServeOptions(queue_size=2, max_body_bytes=64 << 10))) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread):
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=TIMEOUT) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def name(client) -> str:
    return client.models.list().data[0].id


def test_models_and_health(server: ServerThread, client, name: str) -> None:
    assert name == "qwen2-add" or name
    assert [m.id for m in client.models.list().data] == [name]
    health = httpx.get(server.url + "/health", timeout=TIMEOUT).json()
    assert health["status"] == "ok" and health["busy"] is False


def test_plain_completions_answer_heldout_sums(client, name: str) -> None:
    pairs = HELDOUT[::10]
    correct = 0
    for a, b in pairs:
        reply = client.chat.completions.create(model=name, messages=ask(a, b), max_tokens=8)
        choice = reply.choices[0]
        assert choice.finish_reason == "stop" and choice.message.role == "assistant"
        correct += choice.message.content == str(a + b)
        prompt = len(f"{a}+{b}=")
        assert reply.usage.prompt_tokens == prompt
        assert reply.usage.completion_tokens == len(choice.message.content)
        assert reply.usage.total_tokens == prompt + reply.usage.completion_tokens
    assert correct >= 0.9 * len(pairs), f"{correct}/{len(pairs)}"


def test_streamed_completions_answer_heldout_sums(client, name: str) -> None:
    pairs = HELDOUT[5::20]
    correct = 0
    for a, b in pairs:
        chunks = list(client.chat.completions.create(model=name, messages=ask(a, b), stream=True, stream_options={"include_usage": True}))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-2].choices[0].finish_reason == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == len(f"{a}+{b}=")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len({c.id for c in chunks}) == 1
        correct += text == str(a + b)
    assert correct >= 0.9 * len(pairs), f"{correct}/{len(pairs)}"


def test_max_tokens_stop_and_seed(client, name: str) -> None:
    short = client.chat.completions.create(model=name, messages=ask(30, 12), max_tokens=1)
    assert (short.choices[0].message.content, short.choices[0].finish_reason) == ("4", "length")
    stopped = client.chat.completions.create(model=name, messages=ask(30, 12), stop=["2"])
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == ("4", "stop")
    streamed = client.chat.completions.create(model=name, messages=ask(30, 12), stop="2", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "4"
    draws = [
        client.chat.completions.create(model=name, messages=ask(3, 4), temperature=2.0, top_p=1.0, seed=seed, max_tokens=6)
        .choices[0].message.content
        for seed in (11, 11, 12)
    ]
    assert draws[0] == draws[1]


def test_openai_style_errors(server: ServerThread, client, name: str) -> None:
    url = server.url + "/v1/chat/completions"

    def post(**kwargs) -> httpx.Response:
        return httpx.post(url, timeout=TIMEOUT, **kwargs)

    def error(response: httpx.Response) -> dict:
        body = response.json()["error"]
        assert set(body) == {"message", "type", "param", "code"} and "\n" not in body["message"]
        return body

    bad_json = post(content=b'{"messages": [', headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and error(bad_json)["code"] == "invalid_json"
    too_big = post(content=b'{"x": "' + b"a" * (65 << 10) + b'"}')
    assert too_big.status_code == 413 and error(too_big)["type"] == "invalid_request_error"
    for body, param in (
        ({}, "messages"), ({"messages": "hi"}, "messages"), ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
        ({"messages": ask(1, 1), "temperature": 9}, "temperature"), ({"messages": ask(1, 1), "max_tokens": 0}, "max_tokens"),
        ({"messages": ask(1, 1), "stop": [1]}, "stop"), ({"messages": ask(1, 1), "n": 2}, "n"),
        ({"messages": ask(1, 1), "seed": "x"}, "seed"), ({"messages": ask(1, 1), "stream": "yes"}, "stream"),
        ({"messages": ask(1, 1), "seed": -1}, "seed"),  # numpy's generator refused it: HTTP 500 (fuzz)
    ):
        response = post(json=body)
        assert response.status_code == 400 and error(response)["param"] == param, body
    surrogate = post(content=b'{"messages": [{"role": "user", "content": "1+\\ud800"}]}')
    assert surrogate.status_code == 400 and "surrogate" in error(surrogate)["message"]
    too_long = post(json={"messages": [{"role": "user", "content": "1+" * 20 + "1="}]})
    assert too_long.status_code == 400 and error(too_long)["code"] == "context_length_exceeded"
    assert httpx.get(server.url + "/v1/nothing", timeout=TIMEOUT).status_code == 404
    assert httpx.get(url, timeout=TIMEOUT).status_code == 405
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=ask(1, 1))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=name, messages=[])


def test_load_every_request_answered_or_refused(server: ServerThread, name: str) -> None:
    outcomes: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=TIMEOUT) as sdk:
            for step in range(REQUESTS):
                a, b = HELDOUT[(index * REQUESTS + step) * 3]
                try:
                    reply = sdk.chat.completions.create(model=name, messages=ask(a, b), stream=step % 2 == 1)
                    if step % 2:
                        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
                    else:
                        text = reply.choices[0].message.content
                    outcome = ("answered", text == str(a + b))
                except openai.RateLimitError as refused:
                    outcome = ("429", refused.status_code == 429)
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * REQUESTS)
    counts = Counter(kind for kind, _ in outcomes)
    print(f"load test {CLIENTS} clients x {REQUESTS} requests: {dict(counts)}, "
          f"{sum(ok for kind, ok in outcomes if kind == 'answered')} answered correctly")
    assert len(outcomes) == CLIENTS * REQUESTS and set(counts) <= {"answered", "429"}
    assert counts["answered"] >= 1
    assert sum(ok for kind, ok in outcomes if kind == "answered") >= 0.9 * counts["answered"]
    assert all(ok for kind, ok in outcomes if kind == "429")
    health = httpx.get(server.url + "/health", timeout=TIMEOUT).json()
    assert health == {"status": "ok", "model": name, "busy": False, "waiting": 0}


@pytest.fixture()
def slow(runtime_demo_dir: Path):
    """A server whose model never emits EOS and takes 50 ms a token; no queue."""
    simulator = AxModelExecutor(runtime_demo_dir)
    tokenizer = ChatTokenizer.load(runtime_demo_dir)
    endless = EndlessExecutor(simulator, tokenizer.eos_id, delay_s=0.05)
    engine = Engine(runtime_demo_dir, endless, simulator.layout)
    model = Model(engine, tokenizer, PostConfig.load(runtime_demo_dir / POST_CONFIG), "slow")
    with ServerThread(openai_app(model, ServeOptions(queue_size=0))) as running:
        yield running, endless


def wait_idle(url: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while (health := httpx.get(url + "/health", timeout=TIMEOUT).json())["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return health


def test_a_client_that_disconnects_frees_the_model(slow) -> None:
    server, endless = slow
    body = {"model": "slow", "messages": ask(1, 1), "stream": True, "max_tokens": 25}
    with httpx.Client(timeout=TIMEOUT) as http:
        with http.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            seen = [line for line, _ in zip(lines, range(6)) if line.startswith("data: ")]
            assert len(seen) >= 2
        assert wait_idle(server.url) == {"status": "ok", "model": "slow", "busy": False, "waiting": 0}
        calls = endless.post_calls
        time.sleep(0.3)
        assert endless.post_calls == calls < 20, "the generation went on after the client left"
        reply = http.post(server.url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 3}).json()
        assert reply["choices"][0]["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 3


def test_a_full_queue_answers_429(slow) -> None:
    server, _ = slow
    body = {"model": "slow", "messages": ask(1, 1), "stream": True, "max_tokens": 20}
    with httpx.Client(timeout=TIMEOUT) as http, http.stream("POST", server.url + "/v1/chat/completions", json=body) as busy:
        lines = busy.iter_lines()
        next(lines)
        refused = http.post(server.url + "/v1/chat/completions", json={**body, "stream": False})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.headers["retry-after"] == "1"
        text = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in lines if line.startswith("data: {") and json.loads(line[6:])["choices"]
        )
    assert len(text) == 20
    assert wait_idle(server.url)["busy"] is False


def test_the_tool_serves_the_demo(runtime_demo_dir: Path) -> None:
    tool = Path(sys.executable).with_name("axc-serve")
    process = subprocess.Popen([str(tool), str(runtime_demo_dir), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/v1", banner).group(1))  # type: ignore[union-attr]
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT) as sdk:
            name = sdk.models.list().data[0].id
            assert sdk.chat.completions.create(model=name, messages=ask(12, 30)).choices[0].message.content == "42"
    finally:
        process.terminate()
        process.wait(TIMEOUT)


def test_the_tool_refuses_bad_input(runtime_demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from axc.tools import axc_serve

    for args, message in (([str(tmp_path)], "no layer files"), ([str(runtime_demo_dir), "--queue", "-1"], "--queue -1"),
                          ([str(runtime_demo_dir), "--host", "no.such.host.invalid"], "--host no.such.host.invalid")):
        monkeypatch.setattr(sys, "argv", ["axc-serve", *args])
        with pytest.raises(SystemExit) as exit:
            axc_serve.main()
        err = capsys.readouterr().err
        assert exit.value.code == 1 and message in err and len(err.strip().splitlines()) == 1, err
