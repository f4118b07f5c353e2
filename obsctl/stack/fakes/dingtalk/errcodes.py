"""The DingTalk robot answers the fake gives, each with where it was confirmed.

DingTalk answers protocol errors with HTTP 200 and a non-zero ``errcode``; clients must
read the body, never just the status. Sources (stored copies, checked 2026-11):

- official error table of "自定义机器人发送群消息"
  (open.dingtalk.com/document/orgapp/custom-robots-send-group-messages):
  400105 不支持的消息类型, 410100 发送速度太快而限流.
- answers seen from the real endpoint, quoted in public issue threads:
  300001 "token is not exist" (timonwong/prometheus-webhook-dingtalk#91, sdvdxl/falcon-message#7),
  310000 "sign not match" (x-cold/dingtalk-robot#7),
  310000 "invalid timestamp" (jenkinsci/dingtalk-plugin#116, leitingting08/ding-bot-sdk#3),
  310000 "keywords not in content" (timonwong/prometheus-webhook-dingtalk#197),
  460101 "message too long, exceed 20000 bytes" (timonwong/prometheus-webhook-dingtalk#30),
  40035 "缺少参数 json" (ccfos/nightingale#2704),
  400402 "miss param : markdown->title" (RayWangQvQ/BiliBiliToolPro#183),
  400403 "miss param : markdown->text" (feiyu563/PrometheusAlert#63).
- an unauthenticated probe of the real endpoint recorded in a public repository:
  40035 "缺少参数 access_token", 43002 "需要POST请求".
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class RobotAnswer:
    """The ``errcode``/``errmsg`` pair of a ``/robot/send`` answer."""

    errcode: int
    errmsg: str

    @property
    def ok(self) -> bool:
        """Whether the message was accepted."""
        return self.errcode == 0


# A robot accepts a request body of at most this many bytes.
MAX_BODY_BYTES = 20_000

OK = RobotAnswer(0, "ok")
SYSTEM_BUSY = RobotAnswer(-1, "系统繁忙")
MISSING_ACCESS_TOKEN = RobotAnswer(40035, "缺少参数 access_token")
INVALID_JSON = RobotAnswer(40035, "缺少参数 json")
POST_REQUIRED = RobotAnswer(43002, "需要POST请求")
# 43004 is DingTalk's code for a wrong Content-Type header; not seen in a live answer here.
BAD_CONTENT_TYPE = RobotAnswer(43004, "无效的HTTP HEADER Content-Type")
TOKEN_NOT_EXIST = RobotAnswer(300001, "token is not exist")
SIGN_NOT_MATCH = RobotAnswer(310000, "sign not match")
INVALID_TIMESTAMP = RobotAnswer(310000, "invalid timestamp")
KEYWORDS_NOT_IN_CONTENT = RobotAnswer(310000, "keywords not in content")
UNSUPPORTED_MSGTYPE = RobotAnswer(400105, "不支持的消息类型")
MESSAGE_TOO_LONG = RobotAnswer(460101, f"message too long, exceed {MAX_BODY_BYTES} bytes")

# Fields DingTalk was seen to report with their own code; other fields get 40035.
_FIELD_CODES = {"markdown->title": 400402, "markdown->text": 400403}


def missing_param(path: str) -> RobotAnswer:
    """Answer for a required field that is absent or has the wrong type."""
    code = _FIELD_CODES.get(path)
    if code is not None:
        return RobotAnswer(code, f"miss param : {path}")
    return RobotAnswer(40035, f"缺少参数 {path}")


def send_too_fast(limit_per_minute: int) -> RobotAnswer:
    """Answer for a robot that already sent its allowance this minute."""
    return RobotAnswer(410100, f"send too fast, exceed {limit_per_minute} times per minute")
