"""A scriptable fake inference server speaking llama.cpp, Ollama and OpenAI wire formats.

Used by the runner tests and by ``benchmarks/runner_overhead.py``. It is a
small HTTP/1.1 server on 127.0.0.1 written on raw asyncio streams, so a test
decides exactly which bytes leave at which millisecond: a role-only chunk at
50 ms, the first token at 200 ms, a comment ping, a disconnect in the middle
of a chunked body, a stall, bytes that are not UTF-8.

In-process (tests)::

    with FakeEngine("llamacpp") as eng:
        eng.queue(Script(steps=[Step(200, sse(chunk({"content": "hi"})))]))
        ... POST to eng.url + "/v1/chat/completions" ...

As a subprocess (benchmarks)::

    python tests/fake_engine.py --engine llamacpp --port 0   # prints "PORT <n>"

A completion request takes the next queued :class:`Script`, or the engine's
default instant stream when the queue is empty.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

BUILD_INFO = "b9999-fake0000"


# ---------------------------------------------------------------- wire helpers


def sse(obj: Any) -> bytes:
    """One SSE data event carrying ``obj`` as JSON."""
    return b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"


def ndjson(obj: Any) -> bytes:
    """One NDJSON line (Ollama's native stream)."""
    return json.dumps(obj).encode("utf-8") + b"\n"


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    model: str = "tiny",
    fingerprint: str | None = BUILD_INFO,
    **extra: Any,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` with one choice."""
    out: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    if fingerprint:
        out["system_fingerprint"] = fingerprint
    out.update(extra)
    return out


def usage_chunk(
    prompt: int,
    completion: int,
    *,
    reasoning: int | None = None,
    cached: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The trailing usage chunk (empty ``choices``), as include_usage asks."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    out = chunk(None, None, **extra)
    out["choices"] = []
    out["usage"] = usage
    return out


def llama_timings(prompt_n: int, predicted_n: int, cache_n: int = 0) -> dict[str, Any]:
    """llama.cpp's ``timings`` object (numbers are illustrative)."""
    return {
        "cache_n": cache_n,
        "prompt_n": prompt_n,
        "prompt_ms": 1.5,
        "prompt_per_token_ms": 1.5 / max(prompt_n, 1),
        "prompt_per_second": prompt_n / 0.0015,
        "predicted_n": predicted_n,
        "predicted_ms": 3.0,
        "predicted_per_token_ms": 3.0 / max(predicted_n, 1),
        "predicted_per_second": predicted_n / 0.003,
    }


@dataclass
class Step:
    """Write ``data`` at ``at_ms`` after the request arrived."""

    at_ms: float
    data: bytes


@dataclass
class Script:
    """One scripted response.

    ``end``: ``"close"`` finishes the body properly, ``"disconnect"`` drops the
    connection mid-body, ``"hang"`` keeps it open and silent (a stall).
    """

    steps: list[Step] = field(default_factory=list)
    status: int = 200
    content_type: str = "text/event-stream"
    end: str = "close"

    def to_json(self) -> dict[str, Any]:
        """A JSON form, for queueing into a subprocess server."""
        return {
            "status": self.status,
            "content_type": self.content_type,
            "end": self.end,
            "steps": [
                {"at_ms": s.at_ms, "b64": base64.b64encode(s.data).decode()} for s in self.steps
            ],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Script:
        """Inverse of :meth:`to_json`."""
        return cls(
            steps=[Step(s["at_ms"], base64.b64decode(s["b64"])) for s in obj.get("steps", [])],
            status=obj.get("status", 200),
            content_type=obj.get("content_type", "text/event-stream"),
            end=obj.get("end", "close"),
        )


def openai_stream(
    tokens: list[tuple[float, str]],
    *,
    role_at: float | None = None,
    finish_at: float | None = None,
    finish: str = "stop",
    usage: tuple[int, int | None] | None = (5, None),
    engine: str = "llamacpp",
    done: bool = True,
    field_name: str = "content",
) -> Script:
    """A scripted OpenAI-style stream: optional role chunk, tokens, finish, usage, [DONE]."""
    steps: list[Step] = []
    if role_at is not None:
        role = {"role": "assistant", "content": None if engine == "llamacpp" else ""}
        steps.append(Step(role_at, sse(chunk(role))))
    for at, text in tokens:
        steps.append(Step(at, sse(chunk({field_name: text}))))
    last = max([t for t, _ in tokens] + [role_at or 0.0])
    finish_at = last if finish_at is None else finish_at
    final = chunk({}, finish)
    if engine == "llamacpp":
        final["timings"] = llama_timings(5, len(tokens))
    steps.append(Step(finish_at, sse(final)))
    if usage is not None:
        prompt_tokens, completion = usage
        extra = {"timings": llama_timings(5, len(tokens))} if engine == "llamacpp" else {}
        steps.append(
            Step(
                finish_at,
                sse(
                    usage_chunk(
                        prompt_tokens, len(tokens) if completion is None else completion, **extra
                    )
                ),
            )
        )
    if done:
        steps.append(Step(finish_at, DONE))
    return Script(steps)


def ollama_native_stream(tokens: list[tuple[float, str]], *, thinking: bool = False) -> Script:
    """A scripted Ollama /api/chat NDJSON stream ending with the done line."""
    steps = []
    key = "thinking" if thinking else "content"
    for at, text in tokens:
        message = {"role": "assistant", "content": ""}
        message[key] = text
        steps.append(Step(at, ndjson({"model": "m", "message": message, "done": False})))
    last = tokens[-1][0] if tokens else 0.0
    steps.append(
        Step(
            last,
            ndjson(
                {
                    "model": "m",
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop",
                    "total_duration": 123456789,
                    "load_duration": 1234567,
                    "prompt_eval_count": 7,
                    "prompt_eval_duration": 2345678,
                    "eval_count": len(tokens),
                    "eval_duration": 98765432,
                }
            ),
        )
    )
    return Script(steps, content_type="application/x-ndjson")


# ---------------------------------------------------------------- the server


class FakeEngine:
    """The server. ``engine`` is llamacpp, ollama or openai; see the module doc."""

    def __init__(
        self,
        engine: str = "llamacpp",
        model: str = "tiny",
        *,
        model_path: str | None = None,
        tokens: int = 8,
        token_delay_ms: float = 0.0,
        port: int = 0,
    ):
        self.engine = engine
        self.model = model
        self.model_path = model_path or f"/srv/models/{model}.gguf"
        self.default_tokens = tokens
        self.token_delay_ms = token_delay_ms
        self.port = port
        self.scripts: collections.deque[Script] = collections.deque()
        self.requests: list[dict[str, Any]] = []
        self.health_status = 200
        self.health_delay_ms = 0.0
        self.tasks_run = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_log: list[int] = []  # in-flight count seen by each completion
        self.loaded: set[str] = set()
        self.unload_delay_ms = 30.0
        self.tags = [model]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._conns: set[asyncio.Task[Any]] = set()

    # -- lifecycle

    @property
    def url(self) -> str:
        """Base URL (http://127.0.0.1:<port>)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeEngine:
        """Serve from a background thread; returns once listening."""
        self._thread = threading.Thread(target=self._run_thread, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake engine did not start")
        return self

    def _run_thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close the server and every open connection."""
        if not self._loop:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *scripts: Script) -> None:
        """Answer the next completion requests with these scripts, in order."""
        self.scripts.extend(scripts)

    def completions(self) -> list[dict[str, Any]]:
        """Bodies of the completion requests received so far."""
        return [r["body"] for r in self.requests if r["kind"] == "completion"]

    # -- HTTP plumbing

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                t_recv = asyncio.get_running_loop().time()
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                t_recv = asyncio.get_running_loop().time()
                keep = await self._route(method, path.split("?")[0], body, writer, t_recv)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _send_json(self, writer: asyncio.StreamWriter, obj: Any, status: int = 200) -> bool:
        data = json.dumps(obj).encode("utf-8")
        reason = {
            200: "OK",
            404: "Not Found",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }.get(status, "Status")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        return True

    async def _play(self, writer: asyncio.StreamWriter, script: Script, t_recv: float) -> bool:
        loop = asyncio.get_running_loop()
        if script.status != 200:
            body = b"".join(s.data for s in script.steps) or b'{"error":{"message":"boom"}}'
            writer.write(
                f"HTTP/1.1 {script.status} Error\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            return True
        writer.write(
            f"HTTP/1.1 200 OK\r\ncontent-type: {script.content_type}\r\n"
            "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n".encode()
        )
        await writer.drain()
        pending = b""
        steps = sorted(script.steps, key=lambda s: s.at_ms)
        for i, step in enumerate(steps):
            due = t_recv + step.at_ms / 1000.0
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pending += step.data
            # Steps due at the same instant leave in one write, as a real server's would.
            if i + 1 < len(steps) and steps[i + 1].at_ms <= step.at_ms:
                continue
            writer.write(f"{len(pending):x}\r\n".encode() + pending + b"\r\n")
            await writer.drain()
            pending = b""
        if script.end == "disconnect":
            writer.transport.abort()
            return False
        if script.end == "hang":
            await asyncio.sleep(3600)
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    # -- routes

    async def _route(
        self, method: str, path: str, raw: bytes, writer: asyncio.StreamWriter, t_recv: float
    ) -> bool:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if path == "/_control/queue" and method == "POST":
            self.queue(*(Script.from_json(s) for s in body.get("scripts", [])))
            return await self._send_json(writer, {"queued": len(self.scripts)})
        completion = method == "POST" and path in ("/v1/chat/completions", "/api/chat")
        self.requests.append(
            {
                "method": method,
                "path": path,
                "body": body,
                "t_recv": time.perf_counter_ns(),
                "kind": "completion" if completion else "other",
            }
        )
        if completion:
            return await self._completion(path, body, writer, t_recv)
        handler = getattr(self, f"_{self.engine}_route")
        result = await handler(method, path, body)
        if result is None:
            return await self._send_json(writer, {"error": "not found"}, 404)
        status, obj = result
        if path in ("/health", "/api/version") and self.health_delay_ms:
            await asyncio.sleep(self.health_delay_ms / 1000)
        return await self._send_json(writer, obj, status)

    async def _completion(
        self, path: str, body: dict[str, Any], writer: asyncio.StreamWriter, t_recv: float
    ) -> bool:
        self.tasks_run += 1
        if self.engine == "ollama":
            self.loaded.add(_tag(body.get("model", self.model)))
        script = self.scripts.popleft() if self.scripts else self._default(path, body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.in_flight_log.append(self.in_flight)
        try:
            return await self._play(writer, script, t_recv)
        finally:
            self.in_flight -= 1

    def _default(self, path: str, body: dict[str, Any]) -> Script:
        n = self.default_tokens
        d = self.token_delay_ms
        toks = [((i + 1) * d, f"t{i} ") for i in range(n)]
        if path == "/api/chat":
            return ollama_native_stream(toks)
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        return openai_stream(
            toks,
            role_at=0.0,
            engine=self.engine,
            usage=(5, None) if include else None,
            finish="length" if n >= int(body.get("max_tokens") or 10**9) else "stop",
        )

    async def _llamacpp_route(self, method: str, path: str, body: Any) -> tuple[int, Any] | None:
        if path == "/health":
            if self.health_status != 200:
                return self.health_status, {"error": {"code": 503, "message": "Loading model"}}
            return 200, {"status": "ok"}
        if path == "/props":
            return 200, {
                "default_generation_settings": {"n_ctx": 2048, "params": {"temperature": 0.8}},
                "total_slots": 1,
                "model_alias": self.model_path,
                "model_ftype": "all F32",
                "model_path": self.model_path,
                "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
                "build_info": BUILD_INFO,
                "modalities": {"vision": False, "audio": False},
                "is_sleeping": False,
            }
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "models": [{"name": self.model_path, "model": self.model_path, "digest": ""}],
                "data": [
                    {
                        "id": self.model_path,
                        "object": "model",
                        "owned_by": "llamacpp",
                        "meta": {
                            "n_params": 4_200_000,
                            "n_ctx": 2048,
                            "n_ctx_train": 2048,
                            "n_embd": 256,
                            "size": 16_800_000,
                            "ftype": "all F32",
                        },
                    }
                ],
            }
        if path == "/slots":
            slot: dict[str, Any] = {"id": 0, "n_ctx": 2048, "is_processing": False}
            if self.tasks_run:
                slot["id_task"] = self.tasks_run - 1
            return 200, [slot]
        return None

    async def _ollama_route(self, method: str, path: str, body: Any) -> tuple[int, Any] | None:
        if path == "/api/version":
            if self.health_status != 200:
                return self.health_status, {"error": "unavailable"}
            return 200, {"version": "0.12.3"}
        if path == "/api/tags":
            return 200, {
                "models": [
                    {
                        "name": _tag(t),
                        "model": _tag(t),
                        "digest": "ab" * 32,
                        "size": 1_000_000,
                        "details": {
                            "quantization_level": "Q4_K_M",
                            "parameter_size": "0.8B",
                            "format": "gguf",
                            "family": "qwen3",
                        },
                    }
                    for t in self.tags
                ]
            }
        if path == "/api/show":
            return 200, {
                "modelfile": "FROM /home/someone/.ollama/models/blobs/sha256-abab\n",
                "template": "{{ .Prompt }}",
                "details": {"quantization_level": "Q4_K_M", "parameter_size": "0.8B"},
                "model_info": {
                    "general.parameter_count": 800_000_000,
                    "qwen3.context_length": 40960,
                    "tokenizer.ggml.tokens": ["a", "b"],
                },
            }
        if path == "/api/ps":
            return 200, {"models": [{"name": m, "model": m} for m in sorted(self.loaded)]}
        if path == "/api/generate" and method == "POST":
            name = _tag(body.get("model", ""))
            if body.get("keep_alive") == 0:
                loop = asyncio.get_running_loop()
                loop.call_later(self.unload_delay_ms / 1000, self.loaded.discard, name)
            return 200, {"model": name, "done": True, "done_reason": "unload"}
        return None

    async def _openai_route(self, method: str, path: str, body: Any) -> tuple[int, Any] | None:
        if path == "/health":
            return (self.health_status, {}) if self.health_status != 200 else (200, {})
        if path == "/version":
            return 200, {"version": "0.11.0"}
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "max_model_len": 4096}],
            }
        return None


def _tag(name: str) -> str:
    return name if ":" in name.split("/")[-1] else name + ":latest"


def main() -> None:
    """Serve until killed; print the port on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="llamacpp", choices=["llamacpp", "ollama", "openai"])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    engine = FakeEngine(
        args.engine,
        args.model,
        tokens=args.tokens,
        token_delay_ms=args.token_delay_ms,
        port=args.port,
    )
    engine._loop = asyncio.new_event_loop()
    asyncio.set_event_loop(engine._loop)
    engine._loop.run_until_complete(engine._listen())
    print(f"PORT {engine.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        engine._loop.run_forever()


if __name__ == "__main__":
    main()
