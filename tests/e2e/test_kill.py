"""A few rounds of the kill test (tests/e2e/chaos.py; 50 rounds run outside
CI): acknowledged rows survive SIGKILL exactly once, resent batches land
exactly once, saved budget plans whole or not at all, training, the connector and the server carry on."""

from chaos import run


def test_sigkill_loses_and_duplicates_nothing(tmp_path):
    figures = run(kills=4, seed=7, data=tmp_path)
    assert figures["kills"] == 4
    assert figures["batches_acknowledged"] > 0, figures
    assert figures["lost_batches"] == [], figures
    assert figures["duplicated_batches"] == [], figures
    assert figures["partial_batches"] == [], figures
    assert figures["after_resend_wrong"] == [], figures
    assert figures["plans_acknowledged"] > 0, figures
    assert figures["lost_plans"] == [] and figures["partial_plans"] == [], figures
    assert figures["train_after"] == 0 and figures["forecast_rows"] > 0, figures
    assert figures["connector_last_run"] == "succeeded", figures
    assert figures["connector_orders"] == figures["connector_distinct_orders"] == figures["connector_expected_orders"], figures
    assert figures["serves_after"], figures
