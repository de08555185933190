"""The quick record check never accepts what the full JSON Schema validator rejects."""

from __future__ import annotations

import fastjsonschema
from conftest import call_record, end_record, meta_record
from hypothesis import given, settings
from hypothesis import strategies as st

from sitegen import schema

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.floats(min_value=-5, max_value=5, allow_nan=False),
    st.sampled_from(["", "cold", "warm", "call", "x" * 600, "P-EASY"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
RECORDS = {
    "ledger-call.v1.json": call_record(),
    "ledger-meta.v1.json": meta_record(),
    "ledger-end.v1.json": end_record(),
}


@settings(max_examples=600, deadline=None)
@given(
    name=st.sampled_from(sorted(RECORDS)),
    changes=st.dictionaries(
        st.sampled_from(
            [
                "first_delta_ms",
                "run_idx",
                "phase",
                "error",
                "type",
                "prompt_tokens",
                "cell_id",
                "calls",
                "finished_at_utc",
                "cells_planned",
                "git_dirty",
                "extra_field",
            ]
        ),
        VALUES,
        max_size=3,
    ),
    drop=st.sets(st.sampled_from(["cell_id", "type", "finished_at_utc", "benchmark_run_id"])),
)
def test_quick_check_agrees_with_the_full_validator(name, changes, drop):
    record = {k: v for k, v in {**RECORDS[name], **changes}.items() if k not in drop}
    quick = schema._quick(name)
    assert quick is not None
    full_ok = True
    try:
        schema._fast(name)(record)
    except fastjsonschema.JsonSchemaException:
        full_ok = False
    if quick(record):
        assert full_ok, record
    assert (schema.errors(name, record) == []) == full_ok


def test_quick_check_accepts_ordinary_call_records():
    """Call records are the millions of lines: they must take the quick path."""
    assert schema._quick("ledger-call.v1.json")(call_record())
    assert schema._quick("ledger-call.v1.json")(call_record(error="HTTP 500", first_delta_ms=None))
