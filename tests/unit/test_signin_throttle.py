"""Failed sign-in throttling (issue 30, item 6): per-username and per-address lockout."""

from dashboard.signin_throttle import SignInThrottle, client_address


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_five_failures_lock_the_username_for_fifteen_minutes():
    clock = Clock()
    th = SignInThrottle(clock=clock)
    for _ in range(4):
        th.record_failure("olga", "10.0.0.1")
        clock.t += 10
    assert th.locked_for("olga", "10.0.0.1") == (0.0, "")
    th.record_failure("olga", "10.0.0.1")
    left, what = th.locked_for("olga", "10.0.0.2")  # from any address
    assert what == "user" and left == 900
    assert th.locked_for("ada", "10.0.0.1") == (0.0, "")  # other users are not locked
    clock.t += 899
    assert th.locked_for("olga", None)[0] == 1
    clock.t += 1
    assert th.locked_for("olga", None) == (0.0, "")  # the lockout ends on its own


def test_failures_spread_beyond_the_window_do_not_lock():
    clock = Clock()
    th = SignInThrottle(clock=clock)
    for _ in range(10):
        th.record_failure("olga", None)
        clock.t += 16 * 60 / 4  # 4 failures per 16 minutes: never 5 within 15
    assert th.locked_for("olga", None) == (0.0, "")


def test_twenty_failures_from_one_address_lock_it_whatever_the_username():
    clock = Clock()
    th = SignInThrottle(clock=clock)
    for i in range(20):
        th.record_failure(f"user{i}", "203.0.113.9")
    left, what = th.locked_for("someone-else", "203.0.113.9")
    assert what == "client" and left == 900
    assert th.locked_for("someone-else", "198.51.100.1") == (0.0, "")


def test_a_success_clears_the_username_not_the_address():
    th = SignInThrottle(clock=Clock(), client_max=5)
    for _ in range(4):
        th.record_failure("olga", "203.0.113.9")
    th.record_success("olga")
    th.record_failure("olga", "203.0.113.9")
    assert th.locked_for("olga", None) == (0.0, "")
    assert th.locked_for(None, "203.0.113.9")[1] == "client"


def test_the_client_address_trusts_proxy_headers_only_from_this_machine():
    hdr = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Real-IP": "203.0.113.9"}
    assert client_address("127.0.0.1", hdr) == "203.0.113.9"
    assert client_address("::1", {"X-Forwarded-For": "1.2.3.4, 203.0.113.9"}) == "203.0.113.9"
    assert client_address("198.51.100.20", hdr) == "198.51.100.20"  # spoofed headers ignored
    assert client_address("127.0.0.1", {}) == "127.0.0.1"
    assert client_address(None, hdr) is None
