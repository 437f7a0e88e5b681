"""The one JSONL reader: objects per line, and each problem one line naming the file, the line and the fault."""

import pytest

from sage_dspy.jsonl import JsonlError, read_jsonl, torn_tail


def write(tmp_path, data: bytes):
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    return path


def test_objects_per_line_blank_lines_and_a_bom_skipped(tmp_path):
    path = write(tmp_path, b'\xef\xbb\xbf{"a": 1}\n\n  \n{"a": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("data, expected", [
    (b'{"a": 1}\n{"a": \n', "line 2 is not valid JSON (Expecting value: column 7); fix or remove that line"),
    (b'{"a": 1}\n[1]\n', "line 2 is not a JSON object; fix or remove that line"),
    (b'{"a": 1}\n{"a": "caf\xe9"}\n', "line 2 is not UTF-8 (byte 0xe9 at column 11); re-save the file as UTF-8"),
])
def test_each_problem_is_one_line_naming_file_and_line(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(JsonlError) as caught:
        read_jsonl(path, label="corpus file")
    assert str(caught.value).startswith(f"corpus file {path}: ") and expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_torn_last_line_is_left_out_on_request_and_measured(tmp_path):
    path = write(tmp_path, b'{"a": 1}\n{"a": 2')
    assert read_jsonl(path, whole_lines_only=True) == [{"a": 1}]
    assert torn_tail(path) == len(b'{"a": 2')
    with pytest.raises(JsonlError, match="line 2 is not valid JSON"):
        read_jsonl(path)
