"""`shutdown_delay_seconds`: off by default (today's behaviour), bounded, restart-only."""

import pytest

from m2mgate.app.reloader import RESTART_ONLY
from m2mgate.config.compiling import compile_settings, validate_tree
from tests.unit.config.test_schema import changed, problems


def test_off_by_default_and_compiled_into_settings():
    assert compile_settings(validate_tree(changed())).shutdown_delay_seconds == 0
    settings = compile_settings(validate_tree(changed(shutdown_delay_seconds=7.5)))
    assert settings.shutdown_delay_seconds == 7.5


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(-1, "greater than or equal to 0"), (301, "less than or equal to 300"), ("5", "number")],
)
def test_bounded_and_strict(value, fragment):
    found = problems(changed(shutdown_delay_seconds=value))
    assert fragment in found["shutdown_delay_seconds"], found


def test_takes_effect_on_restart_like_the_grace_period():
    # The --workers supervisor bounds its wait for each worker by delay + grace as started.
    assert "shutdown_delay_seconds" in RESTART_ONLY
