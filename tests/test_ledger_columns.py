"""The column-by-column ledger check gives the line-by-line check's verdict.

A ledger is read in batches by sitegen.ledger_columns: call lines it can prove
valid are counted without the line-by-line check, everything else goes to it.
These tests hold the two readings equal (summary, every problem with its line,
and the call rows), and check that real ledgers do take the fast path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sitegen import ledger_columns
from sitegen.ledger import prepass, read_calls, sort_calls
from sitegen.ledger_columns import _lines, _proved, _templates, check_batch

REPO = Path(__file__).resolve().parents[1]
DISPLAY = "runs/x/run.jsonl"

META = (
    '{"type":"meta","ledger_version":1,"benchmark_run_id":"x","started_at_utc":'
    '"2026-01-02T00:00:00Z","cells_planned":["h:llamacpp:m"],"prompts":{}}'
)
END = '{"type":"end","finished_at_utc":"2026-01-02T00:10:00Z","calls":2,"errors":0}'

# A call line as the runner writes it: (key, JSON value text), in order.
CALL = [
    ("type", '"call"'),
    ("cell_id", '"h:llamacpp:m"'),
    ("prompt_id", '"P-EASY"'),
    ("phase", '"warm"'),
    ("run_idx", "0"),
    ("first_delta_ms", "21.465"),
    ("ttft_ms", "21.465"),
    ("total_duration_ms", "160.195"),
    ("wall_ms", "160.459"),
    ("prompt_tokens", "30"),
    ("completion_tokens", "64"),
    ("tokens_per_sec", "461.328"),
    ("finish_reason", '"length"'),
    ("http_status", "200"),
    ("error", "null"),
    ("server_timings", '{"cache_n":0,"prompt_n":30,"predicted_ms":139.219}'),
    ("backend", '"llamacpp"'),
    ("cache_prompt", "false"),
    ("started_at_utc", '"2026-11-23T14:44:42.373Z"'),
]

# Value texts a line may hold instead: valid for some keys, wrong for others,
# and the forms Polars reads differently from a strict JSON parser.
TOKENS = [
    "null",
    "0",
    "-1",
    "1.0",
    "1e2",
    "1E+400",
    "12345678901234567890",
    "9223372036854775807",
    "0.1234567890123456789",
    "true",
    '"5"',
    '""',
    '"warm"',
    '"cold"',
    '":x"',
    '"a\\"b"',
    '"\\u00e9"',
    '"é"',
    '"2026-02-30T00:00:00Z"',
    '"2026-11-23T14:44:42"',
    '"2026-11-23T14:44:42+01:00"',
    "{}",
    '{"a":1,"a":2}',
    '{"a":[1]}',
    "[]",
    "NaN",
    "01",
    "999.5",
]
KEYS = [k for k, _v in CALL] + ["cold_kind", "worker", "extra", "a"]


@st.composite
def call_line(draw: st.DrawFn) -> str:
    pairs = list(CALL)
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["value", "repeat", "drop", "add"]))
        at = draw(st.integers(0, len(pairs) - 1))
        if edit == "value":
            pairs[at] = (pairs[at][0], draw(st.sampled_from(TOKENS)))
        elif edit == "repeat":
            pairs.insert(
                draw(st.integers(0, len(pairs))), (pairs[at][0], draw(st.sampled_from(TOKENS)))
            )
        elif edit == "drop" and len(pairs) > 1:
            pairs.pop(at)
        else:
            pairs.insert(at, (draw(st.sampled_from(KEYS)), draw(st.sampled_from(TOKENS))))
    colon = draw(st.sampled_from([":", ":", ":", " : "]))
    comma = draw(st.sampled_from([",", ",", ",", ", "]))
    return "{" + comma.join(f'"{k}"{colon}{v}' for k, v in pairs) + "}"


def plain_call(phase: str = "warm", **values: str) -> str:
    pairs = [(k, values.get(k, '"' + phase + '"' if k == "phase" else v)) for k, v in CALL]
    return "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"


@st.composite
def ledger(draw: st.DrawFn) -> bytes:
    lines = [META]
    lines += [plain_call("cold", cold_kind='"process_warm"')] if draw(st.booleans()) else []
    lines += draw(st.lists(st.one_of(call_line(), st.builds(plain_call)), min_size=1, max_size=4))
    if draw(st.booleans()):
        lines.append('{"type":"skip","cell_id":"h:llamacpp:m","reason":"probe failed"}')
    if draw(st.booleans()):
        lines.append(END)
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", " ", "[1]"])))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    text = end.join(lines) + (end if draw(st.booleans()) else "")
    data = text.encode()
    if draw(st.integers(0, 9)) == 0:  # bytes that are not UTF-8, in a line or a value
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + data[at:]
    return data


def both_readings(folder: Path, ledgers: list[bytes], max_line: int = 1 << 20):
    """(column verdicts, line-by-line verdicts, column call rows) for some ledgers."""
    paths = []
    for i, data in enumerate(ledgers):
        path = folder / f"l{i}.jsonl"
        path.write_bytes(data)
        paths.append(str(path))
    checked = check_batch([(p, DISPLAY) for p in paths], max_line)
    # every ledger is hashed from the bytes the check read
    assert {p: sha for p, (_stamp, sha) in checked.hashed.items()} == {
        p: hashlib.sha256(data).hexdigest() for p, data in zip(paths, ledgers, strict=True)
    }
    fallback = {p for p, _d in checked.whole}
    for p in fallback:
        checked.results[p] = prepass(Path(p), DISPLAY, max_line_bytes=max_line)
    expected = {p: prepass(Path(p), DISPLAY, max_line_bytes=max_line) for p in paths}
    return checked, expected


def assert_same(checked, expected) -> None:
    for path, (summary, problems) in expected.items():
        got_summary, got_problems = checked.results[path]
        assert sorted(got_problems) == sorted(problems)
        assert got_summary == summary
    valid = [p for p, (_s, problems) in expected.items() if not problems]
    assert sorted(checked.read) == sorted(
        p for p in valid if p not in {w for w, _ in checked.whole}
    )
    if checked.calls is None or not checked.read:
        return
    try:
        reference = read_calls({p: Path(p) for p in checked.read})
    except pl.exceptions.PolarsError:
        return  # e.g. 1.0 in an integer field: valid, but read_calls cannot type it
    paths = pl.Series("run_id", checked.files, dtype=pl.String).gather(checked.calls["_file"])
    mine = sort_calls(checked.calls.insert_column(0, paths).select(reference.columns))
    assert mine.equals(reference)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(ledger(), min_size=1, max_size=3), st.sampled_from([1 << 20, 900]))
@example([(META + "\n" + plain_call() + "\n" + END + "\n").encode()], 1 << 20)
# an object-typed key holding a number or a string, in the line that sets the template
@example([(META + "\n" + plain_call(server_timings="0") + "\n").encode()], 1 << 20)
@example(
    [
        (
            META
            + "\n"
            + plain_call(server_timings="null")
            + "\n"
            + plain_call(server_timings='"x"')
            + "\n"
        ).encode()
    ],
    1 << 20,
)
@example(
    [(META + "\n" + plain_call().replace('"error":null', '"error":null,"error":"x"')).encode()],
    1 << 20,
)
@example(
    [(META + "\n" + plain_call().replace('"run_idx":0', '"run_idx":0,"run_idx":null')).encode()],
    1 << 20,
)
@example(
    [(META + "\n" + plain_call().replace('"cache_n":0', '"cache_n":0,"cache_n":1')).encode()],
    1 << 20,
)
@example(
    [
        (
            META
            + "\n"
            + plain_call().replace('"wall_ms":160.459', '"wall_ms":12345678901234567890')
        ).encode()
    ],
    1 << 20,
)
@example(
    [
        (
            META + "\n" + plain_call().replace('"finish_reason":"length"', '"finish_reason":5')
        ).encode()
    ],
    1 << 20,
)
@example([(plain_call() + "\n" + META + "\n").encode()], 1 << 20)
@example([(META + "\n" + END + "\n" + plain_call() + "\n").encode()], 1 << 20)
def test_the_column_check_gives_the_line_by_line_verdict(tmp_path_factory, ledgers, max_line):
    folder = tmp_path_factory.mktemp("ledgers")
    checked, expected = both_readings(folder, ledgers, max_line)
    assert_same(checked, expected)


def test_a_repeated_key_is_refused_whichever_value_comes_first(tmp_path):
    """Polars keeps a repeated key's first value; the check must not be fooled by
    that, nor by a repeat hidden in a nested object."""
    good = plain_call()
    lines = [
        good.replace('"error":null', '"error":null,"error":"boom"'),
        good.replace('"tokens_per_sec":461.328', '"tokens_per_sec":461.328,"tokens_per_sec":null'),
        good.replace('"cache_n":0', '"cache_n":0,"cache_n":0'),
    ]
    ledgers = [(META + "\n" + good + "\n" + line + "\n" + END + "\n").encode() for line in lines]
    checked, expected = both_readings(tmp_path, ledgers)
    assert_same(checked, expected)
    for _path, (_summary, problems) in checked.results.items():
        assert [(p.line, "duplicate key" in p.message) for p in problems] == [(3, True)]


def test_real_ledgers_are_proved_by_column_and_read_as_before(tmp_path):
    """The bundled runs recorded against llama-server (nested server timings, keys the
    schema does not name, a cold line with a key warm lines lack) and every other
    ledger of the archive take the fast path, with the same verdicts and rows."""
    paths = sorted(str(p) for p in (REPO / "runs").glob("*/run.jsonl"))
    assert paths
    texts = [Path(p).read_text(encoding="utf-8") for p in paths]
    frame = _lines([t.encode() for t in texts])
    templates = _templates(frame)
    data = "".join(t if t.endswith("\n") else t + "\n" for t in texts).encode()
    decoded = pl.read_ndjson(data, schema=templates.dtypes)
    proved = _proved(frame, decoded, templates, 1 << 20)
    calls = frame["line"].str.starts_with('{"type":"call"')
    assert proved.sum() == calls.sum() > 500
    ledgers = [Path(p).read_bytes() for p in paths]
    checked, expected = both_readings(tmp_path, ledgers)
    assert not checked.whole
    assert_same(checked, expected)


@pytest.mark.parametrize(
    ("bad", "seen_before_decoding"),
    [
        (b"\xff\xfe not utf-8\n", True),
        (b"\n", True),
        (b"[1]\n", False),
        (b'{"type":"call","cell_id":"h:llamacpp:m"} trailing\n', False),
    ],
)
def test_a_ledger_polars_cannot_read_cleanly_goes_line_by_line_whole(
    tmp_path, monkeypatch, bad, seen_before_decoding
):
    """Not UTF-8, a blank line (Polars skips it, which would shift the lines after)
    or a line Polars refuses: the whole ledger is given to the line-by-line check,
    and its neighbours in the batch are still checked by column. The first two are
    seen before the batch is decoded (a refused decode costs a retry per ledger)."""
    decoded: list[list[str]] = []
    real = ledger_columns._decodable

    def counted(ledgers, *args):
        decoded.append([Path(x.path).name for x in ledgers])
        return real(ledgers, *args)

    monkeypatch.setattr(ledger_columns, "_decodable", counted)
    good = (META + "\n" + plain_call() + "\n" + END + "\n").encode()
    broken = (META + "\n").encode() + bad + (END + "\n").encode()
    checked, expected = both_readings(tmp_path, [good, broken])
    assert_same(checked, expected)
    assert [Path(p).name for p, _d in checked.whole] == ["l1.jsonl"]
    assert json.dumps(expected[str(tmp_path / "l1.jsonl")][1][0].line) == "2"
    if seen_before_decoding:
        assert decoded == [["l0.jsonl"]]


def test_a_ledger_whose_summary_is_stored_is_hashed_not_checked(tmp_path):
    """The build passes the sha256s whose summaries it holds: such a ledger is hashed
    from its bytes (the build files its stat under that digest) but not checked."""
    good = (META + "\n" + plain_call() + "\n" + END + "\n").encode()
    other = (META + "\n" + plain_call("cold", cold_kind='"process_warm"') + "\n").encode()
    paths = []
    for i, data in enumerate((good, other)):
        (tmp_path / f"l{i}.jsonl").write_bytes(data)
        paths.append(str(tmp_path / f"l{i}.jsonl"))
    stored = hashlib.sha256(good).hexdigest()
    checked = check_batch([(p, DISPLAY) for p in paths], 1 << 20, lambda sha: sha == stored)
    assert list(checked.results) == [paths[1]] and checked.read == [paths[1]]
    assert checked.hashed[paths[0]][1] == stored
    assert checked.hashed[paths[1]][1] == hashlib.sha256(other).hexdigest()


@pytest.mark.parametrize("kind", ["{}", "[]", "1", "null"])
def test_a_record_type_that_is_not_a_string_is_reported_not_a_crash(tmp_path, kind):
    """Found by the property test: ``"type":{}`` made both readings raise TypeError
    (a dict cannot be looked up in the table of record types)."""
    line = plain_call().replace('"type":"call"', f'"type":{kind}')
    checked, expected = both_readings(tmp_path, [(META + "\n" + line + "\n").encode()])
    assert_same(checked, expected)
    (problem,) = expected[str(tmp_path / "l0.jsonl")][1]
    assert (problem.line, "unknown type" in problem.message or "no" in problem.message) == (
        2,
        True,
    )
