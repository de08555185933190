"""The streaming client's timing definitions, against real wire formats on loopback.

The fake server sends each byte at a scheduled millisecond; the client must
measure first_delta_ms / ttft_ms / total_duration_ms against that schedule:
never earlier than scheduled, and only a few ms later.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fake_engine import (
    DONE,
    PING,
    FakeEngine,
    Script,
    Step,
    chunk,
    llama_timings,
    ndjson,
    ollama_native_stream,
    openai_stream,
    sse,
    usage_chunk,
)

from sitegen.runner.sse import Measurement, SSEDecoder, percentile, stream_call

SLACK_MS = 15.0  # loopback + scheduler jitter allowed on a shared 2-core machine
# A timing assertion that misses by a scheduler hiccup is measured again (up to
# twice); a real error in the timing definitions misses on every try.
pytestmark = pytest.mark.flaky(reruns=2, only_rerun=["AssertionError"])


@pytest.fixture(scope="module")
def llama():
    with FakeEngine("llamacpp") as eng:
        yield eng


def call(
    eng: FakeEngine,
    script: Script,
    *,
    native: bool = False,
    stall: float = 5.0,
    total: float = 30.0,
) -> Measurement:
    """Warm the connection with one request, then measure the scripted one."""

    async def go() -> Measurement:
        timeout = httpx.Timeout(stall, connect=5.0)
        async with httpx.AsyncClient(timeout=timeout) as client:
            await client.get(eng.url + "/health")
            eng.queue(script)
            path = "/api/chat" if native else "/v1/chat/completions"
            return await stream_call(
                client, eng.url + path, {"stream": True}, native=native, call_timeout_s=total
            )

    return asyncio.run(go())


def near(measured: float | None, scheduled: float) -> bool:
    return measured is not None and scheduled <= measured <= scheduled + SLACK_MS


def test_role_only_first_chunk_is_first_delta_but_not_ttft(llama: FakeEngine) -> None:
    m = call(llama, openai_stream([(200, "Hello"), (260, " world")], role_at=50, finish_at=300))
    assert near(m.first_delta_ms, 50), m
    assert near(m.ttft_ms, 200), m
    assert near(m.total_duration_ms, 260), m
    assert m.error is None and m.finish_reason == "stop"


def test_trailing_usage_and_done_do_not_extend_total(llama: FakeEngine) -> None:
    script = openai_stream([(100, "a"), (150, "b")], role_at=100, usage=None, done=False)
    script.steps += [Step(400, sse(usage_chunk(9, 2))), Step(450, DONE)]
    m = call(llama, script)
    assert near(m.total_duration_ms, 150), m
    assert m.wall_ms is not None and m.wall_ms >= 450
    assert m.prompt_tokens == 9 and m.completion_tokens == 2 and m.tokens_source == "usage"


def test_tokens_per_sec_follows_the_reference_formula(llama: FakeEngine) -> None:
    tokens = [(100 + 50 * i, f"w{i}") for i in range(5)]  # 100..300 ms
    m = call(llama, openai_stream(tokens, role_at=20))
    expected = 5 / ((m.total_duration_ms - m.first_delta_ms) / 1000)
    assert m.tokens_per_sec == pytest.approx(expected, rel=1e-3)
    # vLLM's definitions: decode time from the first to the last token, over n - 1.
    assert m.tpot_ms == pytest.approx(50.0, abs=4.0)
    assert m.decode_tps == pytest.approx(20.0, rel=0.08)
    assert m.itl_p50_ms == pytest.approx(50.0, abs=4.0)
    assert m.itl_max_ms >= m.itl_p95_ms >= m.itl_p50_ms
    assert m.content_chunks == 5
    assert m.chunks == 1 + 5 + 1 + 1  # role, tokens, finish, usage


@pytest.mark.parametrize("field_name", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_count_as_first_token(llama: FakeEngine, field_name: str) -> None:
    script = openai_stream([(120, "thinking...")], role_at=30, finish_at=260, field_name=field_name)
    script.steps.insert(1, Step(250, sse(chunk({"content": "answer"}))))
    m = call(llama, script)
    assert near(m.ttft_ms, 120), m
    assert near(m.total_duration_ms, 250), m


def test_comment_pings_and_empty_deltas_do_not_count(llama: FakeEngine) -> None:
    script = openai_stream([(300, "x")], usage=(3, 1))
    script.steps += [
        Step(40, PING),
        Step(80, PING),
        Step(120, sse(chunk({}))),  # empty delta
        Step(160, sse(chunk({"content": ""}))),  # empty string
    ]
    m = call(llama, script)
    assert near(m.first_delta_ms, 120), m  # comments are not data events
    assert near(m.ttft_ms, 300), m
    assert m.comment_pings == 2


def test_llamacpp_prompt_progress_chunks_are_not_tokens(llama: FakeEngine) -> None:
    progress = chunk(
        {"role": "assistant", "content": None},
        prompt_progress={"total": 30, "cache": 0, "processed": 15, "time_ms": 4},
    )
    script = openai_stream([(220, "tok")])
    script.steps += [Step(60, sse(progress)), Step(110, sse(progress))]
    m = call(llama, script)
    assert near(m.first_delta_ms, 60), m
    assert near(m.ttft_ms, 220), m


def test_tool_call_arguments_count_as_tokens(llama: FakeEngine) -> None:
    call_delta = {
        "tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "", "arguments": ""}}
        ]
    }
    args_delta = {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": 1}'}}]}
    script = Script(
        [
            Step(40, sse(chunk(call_delta))),
            Step(140, sse(chunk(args_delta))),
            Step(150, sse(chunk({}, "tool_calls"))),
            Step(150, DONE),
        ]
    )
    m = call(llama, script)
    assert near(m.ttft_ms, 140), m
    assert m.finish_reason == "tool_calls"


def test_stream_without_usage_uses_server_counters_or_says_none(llama: FakeEngine) -> None:
    # llama.cpp: no usage chunk, but its timings carry predicted_n.
    m = call(llama, openai_stream([(10, "a"), (20, "b"), (30, "c")], usage=None))
    assert m.tokens_source == "server_timings"
    assert m.completion_tokens == 3
    assert m.server_timings == llama_timings(5, 3)
    # An OpenAI server that reports nothing: counts stay unknown, never re-tokenised.
    m = call(llama, openai_stream([(10, "a"), (20, "b")], usage=None, engine="openai"))
    assert m.tokens_source == "none"
    assert m.completion_tokens is None and m.tokens_per_sec is None
    assert m.content_chunks == 2 and m.error is None


def test_reasoning_and_cached_tokens_from_usage(llama: FakeEngine) -> None:
    script = openai_stream([(10, "a")], usage=None, engine="openai")
    script.steps.insert(-1, Step(10, sse(usage_chunk(20, 30, reasoning=25, cached=16))))
    m = call(llama, script)
    assert (m.prompt_tokens, m.completion_tokens) == (20, 30)
    assert (m.reasoning_tokens, m.cached_tokens) == (25, 16)


def test_mid_stream_disconnect_is_an_error_with_partial_timings(llama: FakeEngine) -> None:
    script = Script(
        [Step(30, sse(chunk({"role": "assistant"}))), Step(80, sse(chunk({"content": "par"})))],
        end="disconnect",
    )
    m = call(llama, script)
    assert m.error is not None
    assert m.error_class in ("RemoteProtocolError", "ReadError")
    assert near(m.ttft_ms, 80)
    assert m.finish_reason is None


def test_clean_close_without_finish_is_an_incomplete_stream(llama: FakeEngine) -> None:
    m = call(llama, Script([Step(10, sse(chunk({"content": "a"})))]))
    assert m.error_class == "IncompleteStream"


def test_http_500_is_recorded_with_status_and_body(llama: FakeEngine) -> None:
    body = json.dumps({"error": {"message": "out of memory"}}).encode()
    m = call(llama, Script([Step(0, body)], status=500))
    assert m.http_status == 500
    assert m.error_class == "HTTPStatusError"
    assert "out of memory" in (m.error or "")
    assert m.first_delta_ms is None and m.ttft_ms is None


def test_stall_past_the_timeout_stops_the_call(llama: FakeEngine) -> None:
    script = Script([Step(20, sse(chunk({"content": "a"})))], end="hang")
    m = call(llama, script, stall=0.3)
    assert m.error_class == "StallTimeout"
    # The token before the stall is kept; its exact timing is covered by the
    # other tests, so here only its place before the stall is asserted (a
    # scheduler hiccup on a shared machine must not fail a timeout test).
    assert m.ttft_ms is not None and 20 <= m.ttft_ms < 300
    assert 300 <= (m.wall_ms or 0) < 1500


def test_total_call_timeout(llama: FakeEngine) -> None:
    steps = [Step(50 * i, PING) for i in range(1, 40)]  # pings keep the read timeout happy
    m = call(llama, Script(steps, end="hang"), stall=1.0, total=0.4)
    assert m.error_class == "CallTimeout"
    assert 400 <= (m.wall_ms or 0) < 1500


def test_invalid_utf8_inside_a_token_does_not_fail_the_call(llama: FakeEngine) -> None:
    bad = b'data: {"choices":[{"index":0,"delta":{"content":"caf\xc3 \xff"}}]}\n\n'
    # A valid multi-byte character split across two network writes must survive too.
    euro = b'data: {"choices":[{"index":0,"delta":{"content":"\xe2\x82\xac"}}]}\n\n'
    cut = euro.index(b"\xe2") + 1
    script = Script(
        [
            Step(50, bad),
            Step(90, euro[:cut]),
            Step(100, euro[cut:]),
            Step(120, sse(chunk({}, "stop"))),
            Step(120, sse(usage_chunk(2, 2))),
            Step(120, DONE),
        ]
    )
    m = call(llama, script)
    assert m.error is None, m.error
    assert near(m.ttft_ms, 50)
    assert near(m.total_duration_ms, 100)
    assert m.decode_errors == 2  # \xc3 and \xff; the split euro sign decodes cleanly
    assert m.content_chunks == 2


def test_ollama_native_stream(llama: FakeEngine) -> None:
    script = ollama_native_stream([(150, "Hi"), (200, "!")])
    script.steps.insert(
        0,
        Step(
            40,
            ndjson({"model": "m", "message": {"role": "assistant", "content": ""}, "done": False}),
        ),
    )
    m = call(llama, script, native=True)
    assert near(m.first_delta_ms, 40), m
    assert near(m.ttft_ms, 150), m
    assert m.tokens_source == "ollama_native"
    assert (m.prompt_tokens, m.completion_tokens) == (7, 2)
    assert m.server_timings is not None and m.server_timings["eval_duration"] == 98765432
    assert m.finish_reason == "stop"


def test_ollama_native_thinking_counts(llama: FakeEngine) -> None:
    m = call(llama, ollama_native_stream([(90, "hmm")], thinking=True), native=True)
    assert near(m.ttft_ms, 90), m


def test_error_event_inside_the_stream(llama: FakeEngine) -> None:
    script = Script(
        [
            Step(10, sse(chunk({"content": "a"}))),
            Step(20, sse({"error": {"code": 500, "message": "context overflow"}})),
        ]
    )
    m = call(llama, script)
    assert m.error_class == "StreamError" and "context overflow" in (m.error or "")


def test_sse_decoder_handles_crlf_split_and_multiline_data() -> None:
    dec = SSEDecoder()
    events: list[Any] = []
    for piece in [b"data: a\r", b"\ndata: b\r\n", b"\r\n: c\r\n\r\nevent: error\ndata: x\n\n"]:
        events += dec.feed(piece)
    assert events == [(None, "a\nb"), ("error", "x")]
    assert dec.comments == 1
    assert dec.feed(b"data: tail") == [] and dec.close() == [(None, "tail")]


def test_percentile_matches_linear_interpolation() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 95) == pytest.approx(48.0)
