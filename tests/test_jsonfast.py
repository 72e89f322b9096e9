"""runtime.jsonfast parses and encodes exactly as the json module does (it drives json's own C code)."""

import json

import pytest

from runtime import jsonfast

DOCS = ['{"a": [1, 2.5, null, true, false, "x\\u00e9"], "b": {}}', " [1] ", '"s"', "-Infinity", "NaN",
        '{"nested": {"k": ["v", {"z": -1e10}]}}', "0", "[]", '{"emoji": "\\ud83d\\ude00"}', "\n\t{}\r\n"]


@pytest.mark.parametrize("doc", DOCS)
def test_loads_matches_json(doc):
    assert json.dumps(jsonfast.loads(doc)) == json.dumps(json.loads(doc))
    assert json.dumps(jsonfast.loads(doc.encode())) == json.dumps(json.loads(doc))


@pytest.mark.parametrize("doc", ["{nope", "[1] x", "", "nul", '{"a":}', "[1,]", '"unterminated'])
def test_loads_errors_are_json_decode_errors(doc):
    with pytest.raises(json.JSONDecodeError) as err:
        jsonfast.loads(doc)
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(doc)
    assert str(err.value) == str(want.value)


def test_dumps_matches_json():
    obj = {"a": "é", "b": [1, None, 2.5, True], "c": {"d": "\n\"q\""}}
    assert jsonfast.dumps(obj) == json.dumps(obj, separators=(",", ":"))
    assert jsonfast.dumps(obj, compact=False) == json.dumps(obj)
    with pytest.raises(TypeError):
        jsonfast.dumps({"x": object()})


def test_loads_bounded_refuses_deep_nesting_with_go_s_words_and_accepts_the_rest():
    import pytest

    from runtime import jsonfast
    n = jsonfast.MAX_DEPTH
    assert jsonfast.loads_bounded("[" * n + "]" * n) is not None                   # at the bound
    for depth in (n + 1, 50000):
        with pytest.raises(jsonfast.DepthExceeded, match=r"^invalid character '\[' exceeded max depth$"):
            jsonfast.loads_bounded("[" * depth + "]" * depth)                       # past it, and past the stack
    with pytest.raises(jsonfast.DepthExceeded, match="'{'"):
        jsonfast.loads_bounded('{"a":' * (n + 1) + "1" + "}" * (n + 1))
    text = '{"s": "' + "[" * (3 * n) + '", "l": [' + ",".join(["[]"] * (3 * n)) + "]}"
    assert jsonfast.loads_bounded(text)["s"] == "[" * (3 * n)   # brackets in strings and siblings: shallow
    assert isinstance(jsonfast.DepthExceeded("x"), ValueError)
