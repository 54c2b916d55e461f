#!/usr/bin/env python3
"""CDNOW comparison: Gyrus's BG/NBD and Gamma-Gamma fits against lifetimes.

On the CDNOW data shipped in the PyPI package `lifetimes` (nothing is
downloaded), with the paper's 39-week calibration period (1997-01-01 to
1997-09-30, time in weeks; Fader, Hardie & Lee 2005):

1. the parameter table on CDNOW_sample.txt (2,357 customers): the published
   values, lifetimes 0.11.3's fit, and Gyrus's (`gyrus-memory cdnow`);
2. fit time on CDNOW_master.txt (23,570 customers), both sides fitting
   BG/NBD and Gamma-Gamma on the same calibration summaries, median of
   `--repeat` runs each, in one run of this script.

lifetimes builds its summaries with `summary_data_from_transaction_data`
(freq 'D', recency and T divided by 7); Gyrus builds its own from the same
file; summaries are not timed on either side.

    cargo build --release --workspace --all-targets
    .venv/bin/python benches/cdnow.py [--record]

(.venv is the test environment scripts/test.sh makes; it has lifetimes.)
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "gamma": 15.44}
END = "1997-09-30"


def datasets():
    import lifetimes
    return os.path.join(os.path.dirname(lifetimes.__file__), "datasets")


def read(path):
    import pandas as pd
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 4 and fields[1].isdigit():
                rows.append((fields[0], fields[1], float(fields[3])))
            elif len(fields) == 5:
                rows.append((fields[1], fields[2], float(fields[4])))
    frame = pd.DataFrame(rows, columns=["customer_id", "date", "value"])
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


def lifetimes_fit(path, repeat):
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data
    summary = summary_data_from_transaction_data(
        read(path), "customer_id", "date", monetary_value_col="value",
        observation_period_end=END, freq="D")
    summary["recency"] /= 7.0
    summary["T"] /= 7.0
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
        gg = GammaGammaFitter().fit(repeaters["frequency"], repeaters["monetary_value"])
        times.append(time.perf_counter() - started)
    params = {k: float(v) for k, v in bg.params_.items()}
    params.update({"p": float(gg.params_["p"]), "q": float(gg.params_["q"]), "gamma": float(gg.params_["v"])})
    return {"customers": len(summary), "params": params, "fit_seconds_median": statistics.median(times),
            "fit_seconds": times}


def gyrus_fit(binary, path, repeat):
    out = subprocess.run([binary, "cdnow", "--transactions", path, "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    params = dict(result["bgnbd"])
    params.update(result["gamma_gamma"])
    result["params"] = params
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gyrus-memory"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="append a section to benches/RESULTS.md")
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} is missing: cargo build --release --workspace --all-targets")
    started = time.time()
    load_start = os.getloadavg()[0]
    sample = os.path.join(datasets(), "CDNOW_sample.txt")
    master = os.path.join(datasets(), "CDNOW_master.txt")
    theirs_sample = lifetimes_fit(sample, 1)
    ours_sample = gyrus_fit(args.binary, sample, 1)
    theirs = lifetimes_fit(master, args.repeat)
    ours = gyrus_fit(args.binary, master, args.repeat)

    lines = ["| parameter | paper | lifetimes | Gyrus |", "|---|---:|---:|---:|"]
    for name in ["r", "alpha", "a", "b", "p", "q", "gamma"]:
        lines.append(f"| {name} | {PAPER[name]} | {theirs_sample['params'][name]:.4f} | "
                     f"{ours_sample['params'][name]:.4f} |")
    table = "\n".join(lines)
    ratio = theirs["fit_seconds_median"] / ours["fit_seconds_median"]
    timing = (
        "| CDNOW_master.txt (23,570 customers) | lifetimes | Gyrus |\n|---|---:|---:|\n"
        f"| customers in the calibration summary | {theirs['customers']:,} | {ours['customers']:,} |\n"
        f"| BG/NBD + Gamma-Gamma fit, median of {args.repeat} (s) | {theirs['fit_seconds_median']:.3f} | "
        f"{ours['fit_seconds_median']:.4f} |\n"
        f"| r, alpha, a, b | " + ", ".join(f"{theirs['params'][k]:.4f}" for k in ["r", "alpha", "a", "b"])
        + " | " + ", ".join(f"{ours['params'][k]:.4f}" for k in ["r", "alpha", "a", "b"]) + " |\n"
        f"| p, q, gamma | " + ", ".join(f"{theirs['params'][k]:.4f}" for k in ["p", "q", "gamma"])
        + " | " + ", ".join(f"{ours['params'][k]:.4f}" for k in ["p", "q", "gamma"]) + " |"
    )
    command = " ".join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else sys.executable,
                        "benches/cdnow.py"] + sys.argv[1:])
    section = (
        f"\n## CDNOW: BG/NBD and Gamma-Gamma against lifetimes — {datetime.date.today().isoformat()}\n\n"
        f"`{command}` on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"lifetimes {metadata.version('lifetimes')}, pandas {metadata.version('pandas')}, scipy "
        f"{metadata.version('scipy')}; Gyrus `gyrus-memory` (release, {ours['threads']} Rayon threads). "
        f"Calibration period 1997-01-01 to {END}, weeks.\n\n"
        f"CDNOW_sample.txt ({ours_sample['customers']:,} customers):\n\n{table}\n\n{timing}\n\n"
        f"Gyrus fits {ratio:.0f}x faster (lifetimes / Gyrus median fit time). Harness wall time "
        f"{time.time() - started:.0f} s; 1-minute load average {load_start:.2f} as it started.\n"
    )
    print(section)
    if args.record:
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(section)


if __name__ == "__main__":
    main()
