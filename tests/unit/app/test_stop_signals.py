"""The stop request: the first signal stops, each later one hurries and is passed on."""

from m2mgate.app.stop_signals import StopRequest


async def test_first_signal_requests_a_stop_later_ones_hurry():
    passed_on: list[str] = []
    stop = StopRequest(on_repeat=lambda: passed_on.append("again"))
    stop._received()
    assert stop.requested.is_set() and not stop.repeated.is_set()
    assert passed_on == []
    stop._received()
    stop._received()
    assert stop.repeated.is_set()
    assert passed_on == ["again", "again"]
