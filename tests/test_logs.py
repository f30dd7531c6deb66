"""The daemon's logging pipeline: JSON lines with journald priorities, stdlib logs, no secret anywhere."""

from __future__ import annotations

import io
import json
import logging
import re
from urllib.parse import quote_plus

import pytest
import structlog
from robot_server import FakeRobots, RobotServer

from notifications.errors import TransportError
from notifications.im import Robot, RobotMessage, RobotTransport, dingtalk_sign
from orchestrator.service.logs import QUIET_LOGGERS, Redactor, configure_daemon

SECRET = "s3cr3t-Pa55/word"
LINE = re.compile(r"^<([0-7])>(\{.*\})$")


@pytest.fixture
def restore_logging():
    """Put logging back as it was: other tests capture structlog output (``capture_logs``)."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)
    structlog.configure(**saved)


def parsed(stream: io.StringIO) -> list[tuple[int, dict]]:
    lines = stream.getvalue().splitlines()
    out = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"not a journald JSON line: {line!r}"
        out.append((int(match.group(1)), json.loads(match.group(2))))
    return out


def test_json_lines_with_journald_priorities(restore_logging):
    stream = io.StringIO()
    configure_daemon(logging.DEBUG, stream=stream, json_lines=True)
    log = structlog.get_logger("duban.test")
    log.debug("tick.idle")
    log.info("reminder.sent", unit="甲镇人民政府", task="T05")
    log.warning("mail.retry", attempts=2)
    log.error("reload.problem", problem="units.toml:3: bad")
    lines = parsed(stream)
    assert [(p, e["event"], e["level"]) for p, e in lines] == [
        (7, "tick.idle", "debug"),
        (6, "reminder.sent", "info"),
        (4, "mail.retry", "warning"),
        (3, "reload.problem", "error"),
    ]
    assert lines[1][1]["unit"] == "甲镇人民政府"  # not \\u-escaped
    assert "甲镇人民政府" in stream.getvalue()
    assert lines[1][1]["logger"] == "duban.test"
    assert list(lines[1][1])[:4] == ["timestamp", "level", "logger", "event"]


def test_apscheduler_and_sqlalchemy_go_through_the_same_pipeline(restore_logging):
    stream = io.StringIO()
    configure_daemon(logging.INFO, stream=stream, json_lines=True)
    logging.getLogger("apscheduler.scheduler").warning(
        "Run time of job %r was missed by %s", "tick", "0:01:00"
    )
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")  # statements stay out at INFO
    logging.getLogger("sqlalchemy.pool").error("connection invalidated")
    lines = parsed(stream)
    assert [(p, e["logger"], e["event"]) for p, e in lines] == [
        (4, "apscheduler.scheduler", "Run time of job 'tick' was missed by 0:01:00"),
        (3, "sqlalchemy.pool", "connection invalidated"),
    ]


def test_no_secret_in_any_line(restore_logging):
    stream = io.StringIO()
    configure_daemon(logging.DEBUG, secrets=[SECRET, None, ""], stream=stream, json_lines=True)
    log = structlog.get_logger("duban.test")
    log.info("smtp.login", password="anything", api_token="abc", nested={"smtp_password": "x", "ok": SECRET})
    log.info("mail.retry", error=f"535 auth failed for duban:{SECRET}", tries=[SECRET, 3])
    log.info("object", transport=type("T", (), {"__repr__": lambda self: f"T(password={SECRET})"})())
    logging.getLogger("apscheduler.executors").error("job failed: %s", SECRET)
    try:
        raise ValueError(f"cannot log in with {SECRET}")
    except ValueError:
        log.exception("tick.failed")
    text = stream.getvalue()
    assert SECRET not in text
    events = {e["event"]: e for _, e in parsed(stream)}
    assert events["smtp.login"]["password"] == "***"
    assert events["smtp.login"]["api_token"] == "***"
    assert events["smtp.login"]["nested"] == {"smtp_password": "***", "ok": "***"}
    assert events["mail.retry"]["error"] == "535 auth failed for duban:***"
    assert events["mail.retry"]["tries"] == ["***", 3]
    assert "Traceback" in events["tick.failed"]["exception"]
    assert "cannot log in with ***" in events["tick.failed"]["exception"]
    assert events["job failed: ***"]["logger"] == "apscheduler.executors"


def test_key_value_on_a_terminal(restore_logging):
    stream = io.StringIO()
    configure_daemon(logging.INFO, secrets=[SECRET], stream=stream, json_lines=False)
    structlog.get_logger("duban.test").info("reminder.sent", unit="town-a", detail=SECRET)
    line = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # without the colours
    assert "reminder.sent" in line and "unit=town-a" in line and "detail=***" in line
    assert not line.startswith("<") and "{" not in line


def test_the_redactor_can_learn_a_new_secret():
    redactor = Redactor(["old-secret"])
    redactor.update(["old-secret", "new-secret"])
    assert redactor.text("old-secret new-secret") == "*** ***"
    assert redactor(None, "info", {"event": "x", "secret_key": None}) == {"event": "x", "secret_key": None}


async def test_debug_lines_of_httpx_never_show_dingtalks_signature(restore_logging):
    """``--debug`` lets httpx log each request's URL; DingTalk's ``sign`` (an HMAC of the secret and
    the time, new with every request) is in it, and no list of known secrets can hold it (issue 26)."""
    token, secret = "dt-token-0123456789abcdef", "SECdt-secret-0123456789abcdef"
    stream = io.StringIO()
    configure_daemon(logging.DEBUG, secrets=[token, secret], stream=stream, json_lines=True)
    platform = FakeRobots(dingtalk={token: ("county", secret)})
    stamp = 1781000000.0
    with RobotServer(platform) as server:
        robots = {"county": Robot("county", "dingtalk", access_token=token, secret=secret)}
        transport = RobotTransport(robots, dingtalk_url=server.dingtalk_url, now=lambda: stamp)
        try:
            await transport.send(RobotMessage("county", "标题", "正文", "<m@x>"))
        except TransportError:
            pass  # (the fake platform checks the timestamp against its clock: the answer does not matter)
        finally:
            await transport.close()
    text = stream.getvalue()
    sign = dingtalk_sign(secret, int(stamp * 1000))
    requests = [e for _, e in parsed(stream) if e["logger"] == "httpx" and "HTTP Request" in e["event"]]
    assert requests and "sign=***" in requests[0]["event"] and "access_token=***" in requests[0]["event"]
    assert sign not in text and quote_plus(sign) not in text and token not in text
