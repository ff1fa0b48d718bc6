import io
import json
import logging

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


def test_access_log_lines_match_the_other_events_and_are_redacted():
    import io
    import json

    from m2mgate.observability.logging import AccessLog, build_logger

    stream = io.StringIO()
    AccessLog(stream, "info").write(
        {
            "path": "/api/eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
            "status": 200,
            "detail": None,
            "remote": "Bearer abc.def",
        }
    )
    build_logger(stream, "info").info("other", path="/x")
    access, other = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(access)[-3:] == list(other)[-3:] == ["event", "level", "timestamp"]
    assert access["event"] == "request" and access["level"] == "info"
    assert access["timestamp"].endswith("Z") and len(access["timestamp"]) == len(other["timestamp"])
    assert "eyJ" not in stream.getvalue() and "abc.def" not in stream.getvalue()
    assert access["status"] == 200 and access["detail"] is None


def test_access_log_is_off_above_info():
    import io

    from m2mgate.observability.logging import AccessLog

    stream = io.StringIO()
    AccessLog(stream, "warning").write({"path": "/x"})
    assert stream.getvalue() == ""


def test_access_log_batches_whole_lines_in_order():
    from m2mgate.observability.logging import AccessLog

    stream = io.StringIO()
    log = AccessLog(stream, "info", batch_lines=3)
    log.write({"n": 1})
    log.write({"n": 2})
    assert stream.getvalue() == ""  # held until the batch is full or flushed
    log.write({"n": 3})
    log.write({"n": 4})
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [1, 2, 3]
    log.flush()
    log.flush()  # nothing held: nothing written twice
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [1, 2, 3, 4]
    assert stream.getvalue().endswith("}\n")
