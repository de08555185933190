"""The streaming client: one timed inference call and the numbers derived from it.

Every time is taken on the client with :func:`time.perf_counter_ns`, from the
instant before the POST is handed to httpx:

``first_delta_ms``
    POST to the first SSE ``data:`` event (the reference definition). For
    Ollama's native NDJSON stream, the first line.
``ttft_ms``
    POST to the first event carrying text: ``content``, ``reasoning_content``
    (llama.cpp), ``reasoning`` (Ollama, newer vLLM), tool-call name/arguments,
    or ``text`` (completions). Role-only chunks, empty deltas, SSE comment pings
    and llama.cpp ``prompt_progress`` chunks do not count.
``total_duration_ms``
    POST to the last text-bearing event; the finish chunk, the trailing usage
    chunk and ``[DONE]`` do not extend it. A stream that carries no text at all
    ends at its finish chunk.

Token counts come from ``usage`` (requested with ``stream_options``); when a
server sends none, the server's own counters are used and ``tokens_source``
says so. Nothing is re-tokenised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

_LINE_END = re.compile(rb"\r\n|\r|\n")
OLLAMA_NATIVE_TIMINGS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def ms(ns: int | None) -> float | None:
    """Nanoseconds to milliseconds rounded to 3 decimals (the ledger's unit)."""
    return None if ns is None else round(ns / 1e6, 3)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


class SSEDecoder:
    """Incremental Server-Sent Events parser working on bytes.

    Lines are split before decoding, so a UTF-8 character cut across two
    network reads is reassembled; bytes that are not valid UTF-8 become U+FFFD
    and are counted in :attr:`decode_errors` instead of failing the call.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None
        self.comments = 0
        self.decode_errors = 0

    def feed(self, chunk: bytes) -> list[tuple[str | None, str]]:
        """Add bytes; return completed events as (event name, data) pairs."""
        self._buf += chunk
        out: list[tuple[str | None, str]] = []
        while True:
            match = _LINE_END.search(self._buf)
            if match is None:
                break
            # A lone "\r" at the end may be the first half of "\r\n".
            if match.group() == b"\r" and match.end() == len(self._buf):
                break
            line, self._buf = self._buf[: match.start()], self._buf[match.end() :]
            self._line(line, out)
        return out

    def close(self) -> list[tuple[str | None, str]]:
        """End of stream: flush a final line and an event missing its blank line."""
        out: list[tuple[str | None, str]] = []
        if self._buf:
            self._line(self._buf.rstrip(b"\r"), out)
            self._buf = b""
        if self._data:
            self._line(b"", out)
        return out

    def _line(self, raw: bytes, out: list[tuple[str | None, str]]) -> None:
        if not raw:
            if self._data:
                out.append((self._event, "\n".join(self._data)))
            self._data = []
            self._event = None
            return
        if raw.startswith(b":"):
            self.comments += 1
            return
        text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text and "\ufffd".encode() not in raw:
            self.decode_errors += text.count("\ufffd")
        name, _, value = text.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


class NDJSONDecoder:
    """Incremental newline-delimited JSON splitter (Ollama's native stream)."""

    def __init__(self) -> None:
        self._buf = b""
        self.decode_errors = 0
        self.comments = 0

    def feed(self, chunk: bytes) -> list[tuple[str | None, str]]:
        """Add bytes; return complete lines as (None, text) pairs."""
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        return list(self._decode(lines))

    def close(self) -> list[tuple[str | None, str]]:
        """End of stream: return a last line that had no newline."""
        rest, self._buf = self._buf, b""
        return list(self._decode([rest]))

    def _decode(self, lines: list[bytes]) -> Iterator[tuple[str | None, str]]:
        for raw in lines:
            raw = raw.strip()
            if not raw:
                continue
            text = raw.decode("utf-8", errors="replace")
            if "\ufffd" in text and "\ufffd".encode() not in raw:
                self.decode_errors += text.count("\ufffd")
            yield None, text


def chunk_has_text(chunk: dict[str, Any]) -> bool:
    """True when an OpenAI-style chunk carries generated text of any kind."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")
        if isinstance(text, str) and text:
            return True
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        for key in ("content", "reasoning_content", "reasoning"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                return True
        for call in delta.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and (fn.get("name") or fn.get("arguments")):
                return True
    return False


def native_has_text(line: dict[str, Any]) -> bool:
    """True when an Ollama native /api/chat line carries text or a tool call."""
    message = line.get("message")
    if isinstance(message, dict):
        for key in ("content", "thinking"):
            value = message.get(key)
            if isinstance(value, str) and value:
                return True
        if message.get("tool_calls"):
            return True
    response = line.get("response")  # /api/generate
    return isinstance(response, str) and bool(response)


@dataclass
class Measurement:
    """What one streamed call measured; turned into a ledger call record."""

    first_delta_ms: float | None = None
    ttft_ms: float | None = None
    total_duration_ms: float | None = None
    headers_ms: float | None = None
    wall_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    tokens_source: str | None = None
    tokens_per_sec: float | None = None
    tpot_ms: float | None = None
    decode_tps: float | None = None
    itl_p50_ms: float | None = None
    itl_p95_ms: float | None = None
    itl_max_ms: float | None = None
    chunks: int = 0
    content_chunks: int = 0
    comment_pings: int = 0
    decode_errors: int = 0
    finish_reason: str | None = None
    http_status: int | None = None
    error: str | None = None
    error_class: str | None = None
    system_fingerprint: str | None = None
    server_timings: dict[str, Any] | None = None
    done: bool = False
    t_start_ns: int = 0
    t_end_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # The generated text, kept beside the ledger rather than in it: the ledger
    # holds measurements, and text can be long.
    text: str = ""
    reasoning: str = ""

    def fields(self) -> dict[str, Any]:
        """The call-record fields (everything except internal bookkeeping and text)."""
        out = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("done", "t_start_ns", "t_end_ns", "extra", "text", "reasoning")
        }
        out.update(self.extra)
        return out


class StreamMeter:
    """Accumulates timestamped stream events and derives the call's metrics."""

    def __init__(self, t0_ns: int, native: bool = False):
        self.t0 = t0_ns
        self.native = native
        self.first_data: int | None = None
        self.first_text: int | None = None
        self.last_text: int | None = None
        self.finish_at: int | None = None
        self.last_data: int | None = None
        self.text_times: list[int] = []
        self.m = Measurement()
        self.usage: dict[str, Any] | None = None
        self.text: list[str] = []
        self.reasoning: list[str] = []

    def event(self, t_ns: int, name: str | None, data: str) -> bool:
        """Handle one event; return True once the stream is complete."""
        if not self.native and data.strip() == "[DONE]":
            self.m.done = True
            return True
        try:
            obj = json.loads(data)
        except ValueError:
            self._error("BadChunk", f"unparseable stream data: {data[:120]!r}")
            return True
        if self.first_data is None:
            self.first_data = t_ns
        self.last_data = t_ns
        self.m.chunks += 1
        if not isinstance(obj, dict):
            return False
        if name == "error" or "error" in obj:
            err = obj.get("error", obj)
            message = err.get("message") if isinstance(err, dict) else err
            self._error("StreamError", str(message)[:500])
            return True
        return self._native(t_ns, obj) if self.native else self._openai(t_ns, obj)

    def _text_at(self, t_ns: int) -> None:
        if self.first_text is None:
            self.first_text = t_ns
        self.last_text = t_ns
        self.text_times.append(t_ns)
        self.m.content_chunks += 1

    def _keep(self, content: Any, reasoning: Any) -> None:
        if isinstance(content, str):
            self.text.append(content)
        if isinstance(reasoning, str):
            self.reasoning.append(reasoning)

    def _openai(self, t_ns: int, obj: dict[str, Any]) -> bool:
        if chunk_has_text(obj):
            self._text_at(t_ns)
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._keep(
                    delta.get("content"), delta.get("reasoning_content") or delta.get("reasoning")
                )
            else:
                self._keep(choice.get("text"), None)
            if choice.get("finish_reason"):
                self.m.finish_reason = str(choice["finish_reason"])
                self.finish_at = self.finish_at or t_ns
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        if isinstance(obj.get("timings"), dict):
            self.m.server_timings = obj["timings"]
        if isinstance(obj.get("system_fingerprint"), str):
            self.m.system_fingerprint = obj["system_fingerprint"]
        return False

    def _native(self, t_ns: int, obj: dict[str, Any]) -> bool:
        if native_has_text(obj):
            self._text_at(t_ns)
        message = obj.get("message")
        if isinstance(message, dict):
            self._keep(message.get("content"), message.get("thinking"))
        if obj.get("done"):
            self.m.done = True
            self.finish_at = t_ns
            self.m.finish_reason = obj.get("done_reason") or "stop"
            timings = {k: obj[k] for k in OLLAMA_NATIVE_TIMINGS if k in obj}
            self.m.server_timings = timings or None
            return True
        return False

    def _error(self, cls: str, message: str) -> None:
        if self.m.error is None:
            self.m.error_class = cls
            self.m.error = message

    def fail(self, cls: str, message: str) -> None:
        """Record a transport error (kept with whatever was measured so far)."""
        self._error(cls, message)

    def finish(self, t_end_ns: int) -> Measurement:
        """Derive every metric from the events seen; safe to call once."""
        m = self.m
        m.t_start_ns, m.t_end_ns = self.t0, t_end_ns
        m.text, m.reasoning = "".join(self.text), "".join(self.reasoning)

        def rel(t: int | None) -> float | None:
            return None if t is None else ms(t - self.t0)

        m.first_delta_ms = rel(self.first_data)
        m.ttft_ms = rel(self.first_text)
        end = self.last_text or self.finish_at or self.last_data
        m.total_duration_ms = rel(end)
        m.wall_ms = ms(t_end_ns - self.t0)
        self._tokens()
        n = m.completion_tokens
        if n is not None and m.total_duration_ms is not None and m.first_delta_ms is not None:
            span = m.total_duration_ms - m.first_delta_ms
            m.tokens_per_sec = round(n / (span / 1000.0), 3) if span > 0 else None
        if n is not None and n > 1 and self.first_text is not None and self.last_text is not None:
            decode_ns = self.last_text - self.first_text
            if decode_ns > 0:
                m.tpot_ms = round(decode_ns / 1e6 / (n - 1), 3)
                m.decode_tps = round((n - 1) / (decode_ns / 1e9), 3)
        gaps = [(b - a) / 1e6 for a, b in zip(self.text_times, self.text_times[1:], strict=False)]
        p50, p95 = percentile(gaps, 50), percentile(gaps, 95)  # None when there are no gaps
        if p50 is not None and p95 is not None:
            m.itl_p50_ms = round(p50, 3)
            m.itl_p95_ms = round(p95, 3)
            m.itl_max_ms = round(max(gaps), 3)
        if m.error is None and not m.done and m.finish_reason is None:
            m.error_class = "IncompleteStream"
            m.error = "stream ended before a finish reason or [DONE]"
        return m

    def _tokens(self) -> None:
        m = self.m
        usage = self.usage
        if usage and isinstance(usage.get("completion_tokens"), int):
            m.tokens_source = "usage"
            m.prompt_tokens = _int(usage.get("prompt_tokens"))
            m.completion_tokens = _int(usage.get("completion_tokens"))
            details = usage.get("completion_tokens_details") or {}
            m.reasoning_tokens = _int(details.get("reasoning_tokens"))
            pdetails = usage.get("prompt_tokens_details") or {}
            m.cached_tokens = _int(pdetails.get("cached_tokens"))
        timings = m.server_timings or {}
        if self.native and "eval_count" in timings:
            m.tokens_source = m.tokens_source or "ollama_native"
            if m.completion_tokens is None:
                m.completion_tokens = _int(timings.get("eval_count"))
            if m.prompt_tokens is None:
                m.prompt_tokens = _int(timings.get("prompt_eval_count"))
        elif "predicted_n" in timings:
            if m.tokens_source is None:
                m.tokens_source = "server_timings"
                m.completion_tokens = _int(timings.get("predicted_n"))
                prompt_n = _int(timings.get("prompt_n"))
                cache_n = _int(timings.get("cache_n"))
                m.prompt_tokens = (
                    prompt_n + cache_n if prompt_n is not None and cache_n is not None else prompt_n
                )
            if m.cached_tokens is None:
                m.cached_tokens = _int(timings.get("cache_n"))
        if m.tokens_source is None:
            m.tokens_source = "none"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def _drain(chunks: AsyncIterator[bytes], limit_s: float = 1.0) -> None:
    """Read what follows [DONE] (normally just the end of the chunked body).

    A body read to its end lets the connection be reused; a server that keeps
    it open past [DONE] only costs ``limit_s``, never an error on the call.
    """
    with contextlib.suppress(TimeoutError, httpx.HTTPError, OSError):
        async with asyncio.timeout(limit_s):
            async for _rest in chunks:
                pass


async def stream_call(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    native: bool = False,
    headers: dict[str, str] | None = None,
    call_timeout_s: float = 300.0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Measurement:
    """POST ``body`` to ``url``, read the stream to the end and measure it.

    Never raises for server or network trouble: the error is recorded on the
    measurement (class and message) with whatever was timed before it. The
    stall timeout between chunks is the client's read timeout.
    """
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    send_headers = {"content-type": "application/json", "accept": "text/event-stream"}
    send_headers.update(headers or {})
    decoder: SSEDecoder | NDJSONDecoder = NDJSONDecoder() if native else SSEDecoder()
    t0 = clock()
    t_end: int | None = None
    meter = StreamMeter(t0, native=native)
    try:
        async with asyncio.timeout(call_timeout_s):
            async with client.stream("POST", url, content=payload, headers=send_headers) as resp:
                meter.m.headers_ms = ms(clock() - t0)
                meter.m.http_status = resp.status_code
                if resp.status_code >= 400:
                    raw = await resp.aread()
                    text = raw[:400].decode("utf-8", errors="replace").strip()
                    meter.fail("HTTPStatusError", f"HTTP {resp.status_code}: {text}")
                else:
                    chunks = resp.aiter_bytes()
                    async for chunk in chunks:
                        now = clock()
                        for name, data in decoder.feed(chunk):
                            if meter.event(now, name, data):
                                t_end = now
                                break
                        if t_end is not None:
                            break
                    if t_end is None:
                        now = clock()
                        for name, data in decoder.close():
                            if meter.event(now, name, data):
                                break
                    else:
                        await _drain(chunks)
    except TimeoutError:
        meter.fail("CallTimeout", f"call exceeded {call_timeout_s:g} s")
    except httpx.ReadTimeout:
        meter.fail("StallTimeout", "no data from the server within the stall timeout")
    except httpx.TimeoutException as exc:
        meter.fail(type(exc).__name__, str(exc) or "timed out")
    except httpx.HTTPError as exc:
        meter.fail(type(exc).__name__, str(exc) or type(exc).__name__)
    except OSError as exc:
        meter.fail(type(exc).__name__, str(exc))
    result = meter.finish(t_end if t_end is not None else clock())
    result.comment_pings = decoder.comments
    result.decode_errors = decoder.decode_errors
    return result
