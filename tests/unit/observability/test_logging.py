import io
import json
import logging

import pytest

from m2mgate.observability.logging import REDACTED, build_logger, redact_text, route_stdlib_logging
from tests.support.tokens import claims_for


def test_redacts_jwt_shaped_text(rsa_signer):
    token = rsa_signer.sign(claims_for("i"))
    assert token not in redact_text(f"failed for {token} here")
    assert redact_text(f"Authorization: Bearer {token}") == f"Authorization: Bearer {REDACTED}"
    assert redact_text("bearer opaque-token-123") == f"bearer {REDACTED}"
    assert redact_text("nothing to see") == "nothing to see"


def test_logger_redacts_keys_values_nested_and_tracebacks(rsa_signer):
    token = rsa_signer.sign(claims_for("i"))
    stream = io.StringIO()
    log = build_logger(stream, "debug")
    log.info("e1", authorization=f"Bearer {token}", token=token, client_secret="s3cr3t")
    log.info("e2", detail={"nested": [f"x {token}"], "Authorization": "Basic abc"})
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        log.exception("e3")
    text = stream.getvalue()
    assert token not in text
    assert token.split(".")[1] not in text
    assert "s3cr3t" not in text
    assert "Basic abc" not in text
    events = [json.loads(line) for line in text.splitlines()]
    assert [event["event"] for event in events] == ["e1", "e2", "e3"]
    assert events[0]["token"] == REDACTED
    assert "ValueError" in events[2]["exception"]


def test_level_filter():
    stream = io.StringIO()
    log = build_logger(stream, "warning")
    log.info("quiet")
    log.warning("loud")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_library_logs_are_json_and_redacted(rsa_signer):
    token = rsa_signer.sign(claims_for("i"))
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        route_stdlib_logging(stream, "info")
        logging.getLogger("aiohttp.server").error("Error handling request %s", f"Bearer {token}")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["logger"] == "aiohttp.server"
    assert token not in line


def request_fields(**overrides):
    fields = {
        "request_id": "rid-1", "method": "GET", "path": "/x", "route": "user", "status": 200,
        "decision": "allow", "reason": "ok", "issuer": "local", "client_id": "svc",
        "duration_ms": 1.25, "upstream_ms": 0.5, "body_bytes": None, "detail": None, "upstream_failure": None,
        "upstream_detail": None, "client_gone": None, "remote": "127.0.0.1",
    }  # fmt: skip
    fields.update(overrides)
    return fields


def test_access_log_lines_match_the_other_events_and_are_redacted():
    import io
    import json

    from m2mgate.observability.logging import AccessLog, build_logger

    stream = io.StringIO()
    AccessLog(stream, "info").write_request(
        **request_fields(
            path="/api/eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", remote="Bearer abc.def", detail=None
        )
    )
    build_logger(stream, "info").info("other", path="/x")
    access, other = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(access)[-3:] == list(other)[-3:] == ["event", "level", "timestamp"]
    assert access["event"] == "request" and access["level"] == "info"
    assert access["timestamp"].endswith("Z") and len(access["timestamp"]) == len(other["timestamp"])
    assert "eyJ" not in stream.getvalue() and "abc.def" not in stream.getvalue()
    assert access["status"] == 200 and access["detail"] is None


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"path": '/a"b\\c', "client_id": "caf\u00e9 \u2603", "detail": "tab\there\nnl\x00"},
        {"route": None, "reason": None, "issuer": None, "client_id": None, "upstream_ms": None},
        {"status": 499, "client_gone": True, "upstream_failure": "aborted",
         "upstream_detail": "ConnectionResetError", "duration_ms": 1e-05},
        {"method": "DELETE", "remote": None, "duration_ms": 12345.678},
    ],
)  # fmt: skip
def test_access_log_lines_are_exactly_what_json_dumps_writes(overrides):
    import io
    import json

    from m2mgate.observability.logging import AccessLog

    stream = io.StringIO()
    log = AccessLog(stream, "info")
    log.tag(worker=3)
    fields = request_fields(**overrides)
    log.write_request(**fields)
    line = stream.getvalue().removesuffix("\n")
    written = json.loads(line)
    expected = {**fields, "worker": 3, "event": "request", "level": "info"}
    expected["timestamp"] = written["timestamp"]
    assert line == json.dumps(expected)


def test_access_log_is_off_above_info():
    import io

    from m2mgate.observability.logging import AccessLog

    stream = io.StringIO()
    AccessLog(stream, "warning").write_request(**request_fields())
    assert stream.getvalue() == ""


def test_access_log_batches_whole_lines_in_order():
    from m2mgate.observability.logging import AccessLog

    stream = io.StringIO()
    log = AccessLog(stream, "info", batch_lines=3)
    log.write_request(**request_fields(request_id="1"))
    log.write_request(**request_fields(request_id="2"))
    assert stream.getvalue() == ""  # held until the batch is full or flushed
    log.write_request(**request_fields(request_id="3"))
    log.write_request(**request_fields(request_id="4"))
    ids = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
    assert ids == ["1", "2", "3"]
    log.flush()
    log.flush()  # nothing held: nothing written twice
    ids = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
    assert ids == ["1", "2", "3", "4"]
    assert stream.getvalue().endswith("}\n")
