"""Per-user file store: names can't escape the user's folder; deletion is per user."""

from __future__ import annotations

import asyncio

import pytest

from storage.local_files import FileStoreError, LocalFileStore, QuotaExceeded, safe_name


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


async def test_concurrent_uploads_of_one_name_all_land_whole(tmp_path):
    store = LocalFileStore(tmp_path / "files", max_size=1 << 20)
    bodies = [bytes([i]) * (20_000 + i) for i in range(40)]  # distinct contents and sizes
    saved = await asyncio.gather(*(store.save("111", "notes.txt", b) for b in bodies))
    # Nothing overwritten, nothing lost: one whole file per upload, under distinct names.
    assert len({f.name for f in saved}) == 40 and "notes.txt" in {f.name for f in saved}
    assert sorted(f.path.read_bytes() for f in saved) == sorted(bodies)
    listed = await store.list("111")
    assert sorted(f.name for f in listed) == sorted(f.name for f in saved)
    assert sorted(p.name for p in store.user_dir("111").iterdir()) == sorted(
        f.name for f in saved
    )  # no temporary file left


async def test_quota_refuses_a_file_that_does_not_fit_and_leaves_nothing(tmp_path):
    store = LocalFileStore(tmp_path / "files", max_size=1000, quota=2500)
    await store.save("111", "a.bin", b"a" * 1000)
    await store.save("111", "b.bin", b"b" * 1000)
    with pytest.raises(QuotaExceeded) as refused:
        await store.save("111", "c.bin", b"c" * 1000)
    message = str(refused.value)
    assert message.startswith("c.bin was not saved: your stored files take 2.0 KiB of the 2.4 KiB")
    assert "this file needs 1,000 bytes" in message
    assert "CLARA_FILES_QUOTA" in message
    assert sorted(p.name for p in store.user_dir("111").iterdir()) == ["a.bin", "b.bin"]
    assert await store.usage("111") == 2000
    await store.save("111", "small.bin", b"s" * 500)  # what still fits is stored
    await store.save("222", "c.bin", b"c" * 1000)  # a quota is per user

    # Concurrent uploads can't together overshoot it: exactly what fits is stored.
    racing = LocalFileStore(tmp_path / "race", max_size=1000, quota=5000)
    outcomes = await asyncio.gather(
        *(racing.save("111", f"f{i}.bin", b"x" * 1000) for i in range(12)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 5
    assert all(isinstance(o, QuotaExceeded) for o in outcomes if isinstance(o, BaseException))
    assert await racing.usage("111") == 5000


async def test_zero_quota_means_unlimited(tmp_path):
    store = LocalFileStore(tmp_path / "files", max_size=1000, quota=0)
    for i in range(5):
        await store.save("111", f"{i}.bin", b"x" * 1000)
    assert await store.usage("111") == 5000
