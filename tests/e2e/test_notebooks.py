"""The notebooks in notebooks/ run headless against a live `gyrus serve`; any failing cell fails the test."""

import os
import pathlib

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"


def test_quickstart_runs_top_to_bottom(flight, monkeypatch):
    monkeypatch.setenv("GYRUS_FLIGHT_URI", flight.uri)
    monkeypatch.setenv("GYRUS_API_KEY", flight.keys["acme_reader"].whole)
    notebook = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # The chart was drawn.
    assert any("image/png" in o.get("data", {}) for o in outputs), "no chart in the outputs"
