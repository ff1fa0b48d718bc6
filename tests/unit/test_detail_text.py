"""Token-supplied values in a log detail: bounded, escaped, never raw (issue #8 item 26)."""

from m2mgate.detail_text import json_type, quoted, quoted_list, span, utc


def test_quoted_escapes_everything_that_could_end_a_line_or_fake_a_field():
    text = quoted("a\"\n\r\x00\u202e\\'b")
    assert not any(character in text for character in "\n\r\x00\u202e")
    assert text == "'a\"\\n\\r\\x00\\u202e\\\\\\'b'"


def test_quoted_is_bounded_and_says_how_long_the_value_was():
    text = quoted("x" * 10_000, limit=200)
    assert text == "'" + "x" * 200 + "'...(10000 chars)"
    assert quoted("short", limit=5) == "'short'"


def test_quoted_list_is_bounded_in_count_and_length():
    assert quoted_list([]) == "[]"
    assert quoted_list(["a", "b"]) == "['a', 'b']"
    text = quoted_list([f"scope-{n}" * 20 for n in range(30)], most=3, limit=10)
    assert text.count("...(") == 3 and text.endswith(", +27 more]")


def test_json_type_names_the_kind_never_the_value():
    kinds = [json_type(v) for v in (None, True, 1, 1.5, "s", [1], {"a": 1})]
    assert kinds == [
        "null", "a boolean", "a number", "a number", "a string", "an array", "an object",
    ]  # fmt: skip


def test_times_for_people():
    assert utc(0) == "1970-01-01T00:00:00Z"
    assert [span(s) for s in (0, 59, 61, 3600, 3 * 86400 + 7200, -90)] == [
        "0s", "59s", "1m01s", "1h00m", "3d02h", "1m30s",
    ]  # fmt: skip
