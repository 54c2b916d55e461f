"""Shared fixtures: a running `gyrus serve` over demo data, and its keys."""

import base64
import os
import re
import signal
import subprocess
import sys
import time

import pytest

GYRUS = os.environ.get("GYRUS_BIN", "target/debug/gyrus")


def run_gyrus(data, *args):
    out = subprocess.run([GYRUS, "--data", str(data), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


class Key:
    """An API key: its id, secret and the whole `gyr_<id>_<secret>`."""

    def __init__(self, whole):
        self.whole = whole
        _, self.id, self.secret = whole.split("_", 2)


def create_key(data, tenant, role):
    key = Key(run_gyrus(data, "keys", "create", "--tenant", tenant, "--role", role).strip().splitlines()[-1])
    # A running server rereads the key table for an unknown key at most every
    # 250 ms (KeyRingConfig::min_reload_interval): a key made by another
    # process works on it from then on.
    time.sleep(0.3)
    return key


# The key that seals connector credentials (`GYRUS_SECRET_KEY`): a server
# started with one has connectors enabled.
SECRET_KEY = base64.b64encode(os.urandom(32)).decode()


class Server:
    def __init__(self, data, extra_args=()):
        self.data = data
        self.proc = subprocess.Popen(
            [GYRUS, "--data", str(data), "serve", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", *extra_args],
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            env={**os.environ, "GYRUS_SECRET_KEY": SECRET_KEY},
        )
        first = self.proc.stdout.readline()
        match = re.search(r"(grpc(?:\+tls)?)://([\d.]+):(\d+)", first)
        assert match, f"gyrus serve printed {first!r}"
        self.scheme, self.host, self.port = match.group(1), match.group(2), int(match.group(3))
        self.uri = f"{self.scheme}://{self.host}:{self.port}"
        http = re.search(r"http://([\d.]+:\d+)", self.proc.stdout.readline())
        assert http, "gyrus serve printed no HTTP address"
        self.http = f"http://{http.group(1)}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        return self.proc.returncode


@pytest.fixture(scope="session")
def flight(tmp_path_factory):
    """`gyrus serve` over the small demo data of acme and globex."""
    data = tmp_path_factory.mktemp("flight")
    run_gyrus(data, "demo", "--no-serve", "--tenants", "acme,globex")
    keys = {
        "acme_reader": create_key(data, "acme", "reader"),
        "acme_writer": create_key(data, "acme", "writer"),
        "globex_reader": create_key(data, "globex", "reader"),
    }
    server = Server(data)
    server.keys = keys
    yield server
    assert server.stop() == 0, "gyrus serve did not exit cleanly on SIGTERM"
