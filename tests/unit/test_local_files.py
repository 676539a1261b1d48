"""Per-user file store: names can't escape the user's folder; deletion is per user."""

from __future__ import annotations

import pytest

from storage.local_files import FileStoreError, LocalFileStore, safe_name


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        ("a/b\\c.txt", "a_b_c.txt"),
        ("..", "file"),
        ("ok name.md", "ok name.md"),
    ],
)
def test_safe_names(raw, clean):
    assert safe_name(raw) == clean


async def test_store_is_per_user_and_never_escapes(tmp_path):
    store = LocalFileStore(tmp_path / "files", max_size=100)
    saved = await store.save("111", "../../secret.txt", b"mine")
    assert saved.path.parent == tmp_path / "files" / "111"
    again = await store.save("111", "secret.txt", b"second")
    assert again.name != saved.name and saved.path.read_bytes() == b"mine"  # nothing overwritten
    await store.save("222", "theirs.txt", b"bob's")
    assert [f.name for f in await store.list("222")] == ["theirs.txt"]
    with pytest.raises(FileStoreError, match="invalid user id"):
        await store.save("../222", "x.txt", b"x")
    with pytest.raises(FileStoreError, match="limit is 100"):
        await store.save("111", "big.bin", b"x" * 101)
    assert await store.delete_user_data("111") == 2
    assert await store.list("111") == [] and len(await store.list("222")) == 1
