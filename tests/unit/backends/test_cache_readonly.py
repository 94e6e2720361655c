"""A response cache opened read-only (the preview's view of the shared cache)."""

from __future__ import annotations

import pytest

from selfinstruct.backends.base import Completion
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.errors import UserError


def test_a_readonly_cache_answers_and_leaves_no_file_behind(tmp_path):
    path = tmp_path / "shared.sqlite"
    writer = ResponseCache(path)
    writer.put("k", Completion("answer", "stop"))
    live = ResponseCache(path, readonly=True)  # beside a live writer: sees its answers
    assert live.get("k").text == "answer"
    live.close()
    writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    reader = ResponseCache(path, readonly=True)
    assert reader.get("k").text == "answer" and reader.get("other") is None
    with pytest.raises(UserError):
        reader.put("new", Completion("x", "stop"))
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == names == ["shared.sqlite"]


def test_a_readonly_cache_that_is_not_a_database_is_a_user_error(tmp_path):
    path = tmp_path / "shared.sqlite"
    path.write_text("not a database")
    with pytest.raises(UserError):
        ResponseCache(path, readonly=True)
