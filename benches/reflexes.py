"""REFLEXES's allocator against SciPy's SLSQP on the same random problems,
in one run: the objective gap and the time ratio.

    cargo build --release --workspace --all-targets
    .venv/bin/python benches/reflexes.py target/release/gyrus

Problems and both solvers are in tests/e2e/allocation_problems.py (the
e2e test asserts the gap on the same problems). Times: SciPy's `minimize`
call, and Gyrus's solve timed inside `gyrus allocate` (both exclude process
start and JSON); the whole `gyrus allocate` process is reported too.
"""

import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from allocation_problems import compare, problems  # noqa: E402


def report(label, rows, wall):
    feasible = [r for r in rows if r["scipy_feasible"]]
    gaps = [r["gap"] for r in feasible]
    ours = sum(r["gyrus_seconds"] for r in rows)
    theirs = sum(r["scipy_seconds"] for r in rows)
    print(f"{label}: {len(rows)} problems, SciPy feasible on {len(feasible)}")
    print(f"  relative objective gap (Gyrus - SciPy) / SciPy: min {min(gaps):+.2e}, "
          f"median {statistics.median(gaps):+.2e}, max {max(gaps):+.2e}; "
          f"Gyrus >= SciPy - 1e-6 on {sum(g >= -1e-6 for g in gaps)} of {len(gaps)}")
    for kind in ("budget", "bounds", "target"):
        k = [r for r in feasible if r["kind"] == kind]
        if k:
            print(f"    {kind}: {len(k)} problems, min gap {min(r['gap'] for r in k):+.2e}")
    print(f"  solve time: Gyrus {ours * 1e3:.1f} ms, SciPy {theirs * 1e3:.1f} ms "
          f"(SciPy / Gyrus = {theirs / ours:.0f}x); the gyrus allocate process: {wall * 1e3:.0f} ms")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/gyrus"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        rows, wall = compare(binary, problems(100, seed=7), tmp / "concave.json")
        report("concave curves (the e2e test's problems)", rows, wall)
        rows, wall = compare(binary, problems(100, seed=11, shapes=(0.5, 3.0)), tmp / "s.json")
        report("S-shaped and concave curves (shape 0.5 to 3)", rows, wall)


if __name__ == "__main__":
    main()
