"""`make bench`: where the time goes. Prints a table and writes bench/results.json.

Each figure is one key with its unit in the name. Targets come from the issues; the table
marks each figure against its target.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from bench.figures import FIGURES

RESULTS = Path(__file__).resolve().parent / "results.json"


def main(selected: list[str]) -> int:
    # A filtered run refreshes its figures and keeps the others from the previous report.
    results: dict[str, dict[str, object]] = (
        json.loads(RESULTS.read_text()).get("figures", {}) if selected and RESULTS.exists() else {}
    )
    print(f"{'figure':44} {'value':>14} {'unit':10} {'target':>16}  verdict")
    for name, (measure, unit, target, better) in FIGURES.items():
        if selected and not any(s in name for s in selected):
            continue
        started = time.perf_counter()
        value = measure()
        elapsed = time.perf_counter() - started
        ok = None if target is None else (value <= target if better == "lower" else value >= target)
        verdict = "—" if ok is None else ("meets" if ok else "MISSES")
        target_text = "—" if target is None else f"{'≤' if better == 'lower' else '≥'} {target:g}"
        print(f"{name:44} {value:14.4g} {unit:10} {target_text:>16}  {verdict}   ({elapsed:.1f}s)")
        results[name] = {"value": value, "unit": unit, "target": target, "better": better, "meets_target": ok}
    RESULTS.write_text(
        json.dumps(
            {"machine": {"python": sys.version.split()[0], "platform": platform.platform()}, "figures": results},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
