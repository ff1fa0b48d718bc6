"""The RFC 9110 §5.6.2 token: the syntax of a header field name, a method (§9.1) and a
parameter name. Defined once; config checks names against it, the header rules quote by it."""

from __future__ import annotations

import re

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
