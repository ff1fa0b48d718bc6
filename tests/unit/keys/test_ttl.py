import pytest

from m2mgate.keys.ttl import TtlBounds, max_age_from_cache_control

BOUNDS = TtlBounds(min_seconds=300, max_seconds=86400, default_seconds=600)


@pytest.mark.parametrize(
    ("values", "max_age"),
    [
        ([], None),
        (["public, max-age=3600"], 3600.0),
        (["max-age=60, must-revalidate"], 60.0),
        (['max-age="120"'], 120.0),
        (["public", "max-age=10"], 10.0),
        (["s-maxage=100"], None),
        (["no-store"], 0.0),
        (["private, no-cache"], 0.0),
        (["max-age=abc"], None),
    ],
)
def test_max_age(values, max_age):
    assert max_age_from_cache_control(values) == max_age


@pytest.mark.parametrize(
    ("max_age", "ttl"), [(None, 600), (0, 300), (10, 300), (3600, 3600), (10**9, 86400)]
)
def test_clamp(max_age, ttl):
    assert BOUNDS.clamp(max_age) == ttl
