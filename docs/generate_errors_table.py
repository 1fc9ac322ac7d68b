"""Regenerate the table of docs/errors.md by running every case of tests/error_cases.py.

    OMP_NUM_THREADS=1 PYTHONPATH=. python docs/generate_errors_table.py

tests/test_errors.py fails when a message no longer matches its row, so the table cannot drift silently.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from error_cases import CASES, DOC, TABLE_HEADER, build_world, render_table, run_case  # noqa: E402

BEGIN, END = "<!-- BEGIN ERRORS TABLE -->\n", "<!-- END ERRORS TABLE -->\n"


def main() -> None:
    messages = {}
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp) / "w")
        for case in CASES:
            with pytest.MonkeyPatch.context() as mp:
                code, err = run_case(case, world, mp)
            if code != 2 or len(err.strip().splitlines()) != 1:
                raise SystemExit(f"case {case.id}: exit {code}, stderr:\n{err}")
            messages[case.id] = err
    text = DOC.read_text()
    table = render_table(messages)
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: BEGIN + table + END, text, flags=re.S)
    DOC.write_text(new)
    print(f"wrote {len(CASES)} rows to {DOC}")


if __name__ == "__main__":
    assert TABLE_HEADER
    main()
