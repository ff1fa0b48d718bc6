import pytest

from m2mgate.errors import InvalidPath
from m2mgate.request_path import normalize_request_path, split_target


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("/", "/"),
        ("/api/admin", "/api/admin"),
        ("/api/admin/", "/api/admin/"),
        ("/api/%61dmin", "/api/admin"),  # the upstream decodes %61 too: route as it will
        ("/api/%41DMIN", "/api/ADMIN"),
        ("/files/a%20b", "/files/a b"),
        ("/caf%C3%A9", "/caf\u00e9"),
        ("/a/...", "/a/..."),
        ("/a/.hidden", "/a/.hidden"),
        ("/a/b%3Bc", "/a/b;c"),  # an encoded ';' is data, not a path parameter
        ("/100%25", "/100%"),  # an encoded '%' is fine when no escape results
        ("/100%25done", "/100%done"),
        ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
    ],
)
def test_accepted_paths(raw, decoded):
    assert normalize_request_path(raw) == decoded


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "*",
        "http://evil/api/admin",  # absolute-form
        "api/admin",
        "/public/../api/admin",
        "/public/./x",
        "/public/%2e%2e/api/admin",
        "/public/%2E%2E/api/admin",
        "/public/.%2e/api/admin",
        "/public/%2e/x",
        "/public/..",
        "//api/admin",
        "/api//admin",
        "/public%2f..%2fapi/admin",
        "/public%2F..%2Fapi/admin",
        "/api/admin%5c",
        "/api\\admin",
        "/api/admin%00",
        "/api/admin%0d%0a",
        "/api/admin;jsessionid=1",  # Tomcat-style path parameter
        "/api/admin/;x",
        "/api/%zz",
        "/api/%4",
        "/api/%",
        "/api/%ff",  # not UTF-8
        "/api/admin\u00e9",  # raw non-ASCII
        "/public/%252e%252e/api/admin",  # double-encoded dot segment
        "/api/%2561dmin",  # double-encoded letter
        "/api%252fadmin",  # double-encoded slash
        "/api/ad min",
        '/api/"x"',
        "/api/<x>",
    ],
)
def test_refused_paths(raw):
    with pytest.raises(InvalidPath):
        normalize_request_path(raw)


def test_split_target():
    assert split_target("/a/b?x=1&y=%2f") == ("/a/b", "x=1&y=%2f")
    assert split_target("/a") == ("/a", "")


@pytest.mark.parametrize(
    "query",
    ["_method=DELETE", "x=1&_METHOD=delete", "a=b;_method=put", "%5Fmethod=PATCH",
     "X-HTTP-Method-Override=DELETE", "_method",
     # Escapes that hide the word "method" itself (found after #8 review R5's fix).
     "_m%65thod=DELETE", "%5f%6d%65%74%68%6f%64=DELETE", "x=1&_METH%4fD=put",
     # PHP's name mangling and array syntax: each reaches Laravel as `_method`.
     ".method=DELETE", "_method[]=DELETE", "_method%5B0%5D=DELETE"],
)  # fmt: skip
def test_a_query_that_overrides_the_method_is_refused(query):
    from m2mgate.request_path import check_query

    with pytest.raises(InvalidPath):
        check_query(query)


@pytest.mark.parametrize(
    "query", ["", "method=GET", "payment_method=card", "x=_method", "q=%20method", "a%20b=1"]
)
def test_queries_that_do_not_override_the_method_pass(query):
    from m2mgate.request_path import check_query

    check_query(query)
