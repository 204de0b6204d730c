"""Agent process logs: a stanza slixmpp could not write because the stream had just died is one
warning line, not a traceback (the drills count tracebacks as unforeseen exceptions)."""

from __future__ import annotations

import logging

from slixmpp.xmlstream.xmlstream import NotConnectedError

from vmenergy.runtime.logs import setup_logging


def _log_with(exc: BaseException) -> None:
    try:
        raise exc
    except type(exc):
        logging.getLogger("slixmpp.xmlstream.xmlstream").error("Exception raised in send queue:", exc_info=True)


def test_a_send_after_the_stream_dropped_is_one_warning_line_and_other_errors_keep_their_traceback(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        _log_with(NotConnectedError())
        dropped = capsys.readouterr().err
        _log_with(KeyError("x"))
        other = capsys.readouterr().err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "WARNING" in dropped and "event=send-after-stream-dropped" in dropped and "Traceback" not in dropped
    assert "ERROR" in other and "Traceback" in other and "KeyError" in other
