"""Running the `gyrus` binary from the benchmark scripts."""

import subprocess
import sys


def gyrus(binary, data, *args):
    """Runs `gyrus --data DATA ARGS...`; exits with its stderr if it fails."""
    out = subprocess.run([binary, "--data", data, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"gyrus {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def key(binary, data, tenant, role):
    """A new API key of `tenant` with `role` (the whole `gyr_...`)."""
    return gyrus(binary, data, "keys", "create", "--tenant", tenant, "--role", role).strip().splitlines()[-1]
