"""Compare the publication gate's credential rules with detect-secrets.

Runs both over the gate's corpora (tests/data/gate/planted.txt and
lookalikes.txt, placeholders expanded as the tests expand them) and prints,
for each tool: planted credentials caught, look-alikes flagged (false
positives), and the planted lines only one of them catches.

detect-secrets is not a dependency of sitegen: install it to run this
(``pip install detect-secrets``); without it the script says so and exits 0.

    python3 benchmarks/gate_vs_detect_secrets.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sitegen.gate import scan_text  # noqa: E402
from sitegen.gate.rules import CREDENTIAL_RULES  # noqa: E402

# What "a credential" means for the comparison: the provider rules and the
# generic assignment rule (detect-secrets looks for nothing else of ours).
CREDENTIALS = CREDENTIAL_RULES | {"generic-secret"}


def main() -> int:
    try:
        from detect_secrets import SecretsCollection
        from detect_secrets.settings import default_settings
    except ImportError:
        print("detect-secrets is not installed (pip install detect-secrets): comparison skipped")
        return 0
    from test_gate import load_corpus

    planted = [c for c in load_corpus("planted.txt", with_rule=True) if c.rule in CREDENTIALS]
    lookalikes = load_corpus("lookalikes.txt", with_rule=False)

    def ours(case) -> bool:
        return any(f.rule in CREDENTIALS for f in scan_text(case.text, "c", kind=case.kind))

    with tempfile.TemporaryDirectory() as tmp, default_settings():

        def theirs(case) -> bool:
            # a file per case, named by kind, so its filters see a realistic file
            suffix = {"markdown": ".md", "jsonl": ".jsonl", "text": ".txt"}.get(
                case.kind, "." + case.kind
            )
            path = Path(tmp) / f"case{suffix}"
            path.write_text(case.text, encoding="utf-8")
            found = SecretsCollection()
            found.scan_file(str(path))
            return bool(list(found))

        rows = []
        for name, check in (("sitegen gate", ours), ("detect-secrets 1.5 defaults", theirs)):
            caught = {c.lineno for c in planted if check(c)}
            false = [c for c in lookalikes if check(c)]
            rows.append((name, caught, false))
    print(f"planted credentials: {len(planted)}; look-alike lines: {len(lookalikes)}")
    for name, caught, false in rows:
        print(f"{name:30} caught {len(caught):3}/{len(planted)}  false positives {len(false):3}")
    (_, ours_caught, _), (_, theirs_caught, theirs_false) = rows
    for label, only in (
        ("only detect-secrets catches", theirs_caught - ours_caught),
        ("only the gate catches", ours_caught - theirs_caught),
    ):
        print(f"{label}: {len(only)}")
        for c in planted:
            if c.lineno in only:
                print(f"  planted.txt:{c.lineno} [{c.rule}]")
    print("detect-secrets false positives:")
    for c in theirs_false:
        print(f"  lookalikes.txt:{c.lineno} {c.text[:70]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
