"""`axc-tokenizer-server`: both protocols of the board runtime's tokenizer server over
HTTP, against transformers' own `apply_chat_template` for the same conversation (a tiny
ChatML byte-level BPE built offline, and the demo's character tokenizer without a template)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from axc.runtime.http import ServerThread
from axc.runtime.tokenizer import ChatTokenizer
from axc.runtime.tokenizer_server import tokenizer_app

sys.path.insert(0, str(Path(__file__).parent))
from chat_tokenizer import build_chat_tokenizer  # noqa: E402

transformers = pytest.importorskip("transformers")
DEMO = Path(__file__).resolve().parents[2] / "demo" / "qwen2-add"
TIMEOUT = 10.0
SYSTEM = "You answer in one word."


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chat_tokenizer(tmp_path_factory.mktemp("chatml"))


@pytest.fixture(scope="module")
def hf(chat_dir: Path) -> Any:
    return transformers.AutoTokenizer.from_pretrained(str(chat_dir))


def template_ids(hf: Any, messages: list[dict[str, str]], generation_prompt: bool = True) -> list[int]:
    return list(hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)["input_ids"])


@pytest.fixture(scope="module")
def uid_server(chat_dir: Path):
    with ServerThread(tokenizer_app(ChatTokenizer.load(chat_dir), "uid", SYSTEM)) as server:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            yield client


@pytest.fixture(scope="module")
def plain_server(chat_dir: Path):
    with ServerThread(tokenizer_app(ChatTokenizer.load(chat_dir), "plain", None)) as server:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            yield client


def test_uid_multi_turn_against_apply_chat_template(uid_server: httpx.Client, hf: Any) -> None:
    uid = uid_server.get("/get_uid").json()["uid"]
    assert uid_server.get("/bos_id", params={"uid": uid}).json() == {"bos_id": -1}
    assert uid_server.get("/eos_id", params={"uid": uid}).json() == {"eos_id": hf.eos_token_id}
    system = [{"role": "system", "content": "Be brief."}]
    reset = uid_server.post("/reset", json={"uid": uid, "system_prompt": "Be brief."}).json()
    assert reset == {"token_ids": template_ids(hf, system, False)}
    first = system + [{"role": "user", "content": "What is one plus one?"}]
    turn1 = uid_server.post("/encode", json={"uid": uid, "text": "What is one plus one?"}).json()
    assert turn1["token_ids"] == template_ids(hf, first)
    assert turn1["diff"] == turn1["token_ids"][len(reset["token_ids"]) :]
    second = first + [{"role": "assistant", "content": "Two."}, {"role": "user", "content": "And 2+3?"}]
    turn2 = uid_server.post("/encode", json={"uid": uid, "text": "And 2+3?", "last_reply": "Two."}).json()
    assert turn2["token_ids"] == template_ids(hf, second)
    held = template_ids(hf, first + [{"role": "assistant", "content": "Two."}], False)
    assert turn2["token_ids"][: len(held)] == held and turn2["diff"] == turn2["token_ids"][len(held) :]
    third = second + [{"role": "assistant", "content": "Five."}, {"role": "user", "content": "Thanks"}]
    turn3 = uid_server.post("/encode", json={"uid": uid, "text": "Thanks", "last_reply": "Five."}).json()
    assert turn3["token_ids"] == template_ids(hf, third)


def test_uid_sessions_are_independent_and_default_to_the_server_system_prompt(uid_server: httpx.Client, hf: Any) -> None:
    a, b = (uid_server.get("/get_uid").json()["uid"] for _ in range(2))
    assert a != b
    ids = uid_server.post("/encode", json={"uid": a, "text": "hello"}).json()
    expected = template_ids(hf, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hello"}])
    assert ids == {"token_ids": expected, "diff": expected}
    reset = uid_server.post("/reset", json={"uid": b}).json()["token_ids"]
    assert reset == template_ids(hf, [{"role": "system", "content": SYSTEM}], False)
    other = uid_server.post("/encode", json={"uid": b, "text": "hi"}).json()
    assert other["token_ids"] == template_ids(hf, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}])


def test_uid_decode_holds_back_incomplete_utf8(uid_server: httpx.Client, hf: Any) -> None:
    uid = uid_server.get("/get_uid").json()["uid"]
    ids = hf("é中 ok", add_special_tokens=False)["input_ids"]
    pieces = [uid_server.post("/decode", json={"uid": uid, "token_ids": [t]}).json()["text"] for t in ids]
    assert "\ufffd" not in "".join(pieces)
    assert "".join(pieces) == "é中 ok"
    assert pieces[0] == ""  # the first byte of é alone is incomplete


def test_uid_invalid_uid_and_bad_requests(uid_server: httpx.Client) -> None:
    invalid = {"error": "Invalid uid"}
    assert uid_server.get("/bos_id", params={"uid": "nope"}).json() == invalid
    assert uid_server.get("/eos_id").json() == invalid
    for path, body in (("/encode", {"uid": "nope", "text": "x"}), ("/decode", {"uid": "x", "token_ids": [1]}), ("/reset", {"uid": "x"})):
        response = uid_server.post(path, json=body)
        assert response.status_code == 200 and response.json() == invalid
    uid = uid_server.get("/get_uid").json()["uid"]
    bad = uid_server.post("/encode", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    assert uid_server.post("/encode", json={"uid": uid, "text": 5}).status_code == 400
    surrogate = uid_server.post("/encode", content=b'{"uid": "%s", "text": "a\\ud800"}' % uid.encode())
    assert surrogate.status_code == 400 and "surrogate" in surrogate.json()["error"]
    assert uid_server.post("/decode", json={"uid": uid, "token_ids": [10**9]}).status_code == 400
    assert uid_server.post("/decode", json={"uid": uid, "token_ids": "12"}).status_code == 400
    huge = uid_server.post("/encode", json={"uid": uid, "text": "a" * (2 << 20)})
    assert huge.status_code == 413 and "over" in huge.json()["error"]
    missing = uid_server.get("/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "Invalid GET endpoint"}
    assert uid_server.post("/get_uid").json() == {"error": "Invalid POST endpoint"}


def test_plain_protocol_against_apply_chat_template(plain_server: httpx.Client, hf: Any) -> None:
    assert plain_server.get("/bos_id").json() == {"bos_id": -1}
    assert plain_server.get("/eos_id").json() == {"eos_id": hf.eos_token_id}
    ids = plain_server.post("/encode", json={"text": "What is 2+3?", "img_prompt": False}).json()["token_ids"]
    assert ids == template_ids(hf, [{"role": "user", "content": "What is 2+3?"}])
    text = plain_server.post("/decode", json={"token_ids": ids}).json()["text"]
    assert text == hf.decode(ids)
    image = plain_server.post("/encode", json={"text": "x", "img_prompt": True})
    assert image.status_code == 400 and "vision" in image.json()["error"]


def test_plain_protocol_of_the_demo_without_a_template() -> None:
    demo = transformers.AutoTokenizer.from_pretrained(str(DEMO))
    with ServerThread(tokenizer_app(ChatTokenizer.load(DEMO), "plain")) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        ids = client.post("/encode", json={"text": "12+30="}).json()["token_ids"]
        assert ids == demo("12+30=", add_special_tokens=False)["input_ids"]
        assert client.get("/eos_id").json() == {"eos_id": demo.eos_token_id}
        assert client.post("/decode", json={"token_ids": ids}).json() == {"text": "12+30="}


def test_the_tool_serves_the_demo_directory() -> None:
    tool = Path(sys.executable).with_name("axc-tokenizer-server")
    process = subprocess.Popen([str(tool), str(DEMO), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            uid = client.get("/get_uid").json()["uid"]
            got = client.post("/encode", json={"uid": uid, "text": "1+1="}).json()
            assert got["token_ids"] == got["diff"] and len(got["token_ids"]) == 4
    finally:
        process.terminate()
        process.wait(TIMEOUT)


def test_the_tool_refuses_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from axc.tools import axc_tokenizer_server

    for args, message in (([str(tmp_path / "none")], "is not a directory"), ([str(tmp_path)], "cannot load its tokenizer"),
                          ([str(DEMO), "--port", "70000"], "expected 0..65535"), ([str(DEMO), "--protocol", "x"], "invalid choice")):
        monkeypatch.setattr(sys, "argv", ["axc-tokenizer-server", *args])
        with pytest.raises(SystemExit) as exit:
            axc_tokenizer_server.main()
        err = capsys.readouterr().err
        assert exit.value.code == 1 and message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1


def test_qwen3_sessions_append_no_think_and_strip_think_tags(chat_dir: Path, hf: Any, tmp_path: Path) -> None:
    from axc.runtime.tokenizer_service import UidService

    qwen3 = tmp_path / "qwen3"
    qwen3.mkdir()
    for path in chat_dir.iterdir():
        (qwen3 / path.name).write_bytes(path.read_bytes())
    (qwen3 / "config.json").write_text('{"model_type": "qwen3"}')
    tokenizer = ChatTokenizer.load(qwen3)
    assert tokenizer.no_think and not ChatTokenizer.load(chat_dir).no_think
    (qwen3 / "config.json").write_text('{"tokenizer_type": "Qwen3"}')  # a built directory's runtime config
    assert ChatTokenizer.load(qwen3).no_think
    (qwen3 / "config.json").write_text('{"model_type": "qwen3"}')
    service = UidService(tokenizer)
    uid = service.new_uid()
    ids, _ = service.encode(uid, "hi", None)
    assert ids == template_ids(hf, [{"role": "user", "content": "hi/no_think"}])
    ids, _ = service.encode(uid, "more/no_think", "<think>\n\n</think>\nhello")
    assert ids == template_ids(hf, [
        {"role": "user", "content": "hi/no_think"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "more/no_think"},
    ])
