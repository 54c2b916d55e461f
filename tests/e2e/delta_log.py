"""Reading a Delta table's transaction log without a Delta library."""

import json
import os


def active_files(table_dir):
    """The Parquet files the Delta log says make up the current version."""
    live = set()
    log = os.path.join(table_dir, "_delta_log")
    for name in sorted(os.listdir(log)):
        if not name.endswith(".json"):
            continue
        for line in open(os.path.join(log, name), encoding="utf-8"):
            action = json.loads(line)
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
    return [os.path.join(table_dir, p) for p in sorted(live)]
