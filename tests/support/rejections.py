"""`refused(Expired)`: the verifier's `Rejected` carrying that gateway error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from m2mgate.auth.verifier import Rejected
from m2mgate.errors import GatewayError


@contextmanager
def refused(kind: type[GatewayError]) -> Iterator[pytest.ExceptionInfo[Rejected]]:
    with pytest.raises(Rejected) as caught:
        yield caught
    assert isinstance(caught.value.error, kind), caught.value.error
