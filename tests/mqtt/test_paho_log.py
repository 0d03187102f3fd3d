"""A broker that goes away is logged as a warning: the publisher reconnects by itself."""

import logging

import pytest

import hipsense.mqtt  # noqa: F401  (installs the filter on the client library's log)


def test_a_lost_connection_is_a_warning_and_other_errors_stay_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    paho = logging.getLogger("mqtt")
    with caplog.at_level(logging.DEBUG, logger="mqtt"):
        # What paho logs when the broker resets the connection.
        paho.error("failed to receive on socket: %s", ConnectionResetError(104, "reset"))
        paho.error("failed to send on socket: %s", "something else")
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [
        ("WARNING", "failed to receive on socket"),
        ("ERROR", "failed to send on socket"),
    ]
