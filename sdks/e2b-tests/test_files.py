"""Files with the sync `e2b.Sandbox`: plain HTTP /files (upload, download) and
filesystem.Filesystem over Connect RPC (Stat, ListDir, MakeDir, Move, Remove, the
CreateWatcher/GetWatcherEvents/RemoveWatcher polling watch); envd-version gates."""
import io
import os

import pytest
from e2b import (
    FileNotFoundException,
    FilesystemEventType,
    FileType,
    InvalidArgumentException,
    SandboxException,
    TemplateException,
)

from conftest import wait_until

HOME = "/home/user"
DIR = f"{HOME}/e2b-files"


def test_write_and_read_text(sbx):
    path = f"{DIR}/deep/er/a.txt"  # missing parents are created
    info = sbx.files.write(path, "alpha ✓\nβ\n")
    assert info.path == path
    assert info.name == "a.txt"
    assert info.type == FileType.FILE
    assert sbx.files.read(path) == "alpha ✓\nβ\n"
    # The guest sees the same bytes, owned by the default user.
    assert sbx.commands.run(f"cat {path}; stat -c %U {path}").stdout == "alpha ✓\nβ\nuser\n"


def test_write_and_read_bytes(sbx):
    data = bytes(range(256)) * 4096 + os.urandom(12345)  # ~1 MiB, every byte value
    path = f"{DIR}/blob.bin"
    sbx.files.write(path, data)
    assert bytes(sbx.files.read(path, format="bytes")) == data
    size = sbx.commands.run(f"stat -c %s {path}").stdout.strip()
    assert int(size) == len(data)


def test_read_stream(sbx):
    path = f"{DIR}/streamed.bin"
    data = os.urandom(300_000)
    sbx.files.write(path, data)
    reader = sbx.files.read(path, format="stream")
    assert b"".join(reader) == data


def test_signed_urls_are_not_served(sbx):
    # download_url()/upload_url() are built by the SDK with urljoin(E2B_SANDBOX_URL, "/files"),
    # which drops the /e2b prefix, and they carry no sandbox id: they reach OmniRun's own
    # /files, which answers a JSON 401 without an API key, and write nothing.
    import httpx
    sbx.files.write(f"{DIR}/signed.txt", "not for strangers")
    url = sbx.download_url(f"{DIR}/signed.txt")
    assert "/e2b/" not in url
    r = httpx.get(url, timeout=30)
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.json()["message"]
    r = httpx.post(sbx.upload_url(f"{DIR}/uploaded.txt"), files={"file": ("uploaded.txt", b"x")}, timeout=30)
    assert r.status_code == 401, (r.status_code, r.text)
    assert sbx.files.exists(f"{DIR}/uploaded.txt") is False


def test_overwrite(sbx):
    path = f"{DIR}/over.txt"
    sbx.files.write(path, "a much longer first version\n")
    sbx.files.write(path, "short\n")
    assert sbx.files.read(path) == "short\n"


def test_write_as_root(sbx):
    path = "/root/e2b-root.txt"
    sbx.files.write(path, "secret", user="root")
    assert sbx.files.read(path, user="root") == "secret"
    assert sbx.commands.run(f"stat -c %U {path}", user="root").stdout == "root\n"


def test_write_file_object_uses_octet_stream(sbx):
    # A file-like object is uploaded as application/octet-stream (envd >= 0.5.7).
    path = f"{DIR}/stream.bin"
    data = os.urandom(200_000)
    info = sbx.files.write(path, io.BytesIO(data))
    assert info.path == path
    assert bytes(sbx.files.read(path, format="bytes")) == data


def test_write_gzip_is_refused(sbx):
    # gzip=True is an octet-stream upload with Content-Encoding: gzip, which the endpoint
    # refuses (400: uploads stream straight to the guest); nothing is written.
    path = f"{DIR}/gz.txt"
    with pytest.raises(InvalidArgumentException) as info:
        sbx.files.write(path, "compressed\n" * 100, gzip=True)
    assert "gzip" in str(info.value).lower(), info.value
    assert sbx.files.exists(path) is False


def test_read_gzip(sbx):
    # A download may be compressed (Accept-Encoding: gzip); httpx decodes it.
    path = f"{DIR}/gz-read.txt"
    sbx.files.write(path, "compressed ✓\n" * 100)
    assert sbx.files.read(path, gzip=True) == "compressed ✓\n" * 100


def test_write_files_several(sbx):
    batch = f"{DIR}/batch"
    infos = sbx.files.write_files([
        {"path": f"{batch}/x.txt", "data": "x"},
        {"path": f"{batch}/y.txt", "data": "yy"},
        {"path": f"{batch}/sub/z.bin", "data": b"\x00\xffz"},
    ])
    assert sorted(i.path for i in infos) == [f"{batch}/sub/z.bin", f"{batch}/x.txt", f"{batch}/y.txt"]
    assert sbx.files.read(f"{batch}/x.txt") == "x"
    assert sbx.files.read(f"{batch}/y.txt") == "yy"
    assert bytes(sbx.files.read(f"{batch}/sub/z.bin", format="bytes")) == b"\x00\xffz"


def test_list(sbx):
    base = f"{DIR}/listing"
    sbx.files.write_files([
        {"path": f"{base}/one.txt", "data": "1"},
        {"path": f"{base}/two.txt", "data": "22"},
        {"path": f"{base}/inner/three.txt", "data": "333"},
    ])
    entries = {e.name: e for e in sbx.files.list(base)}
    assert set(entries) == {"one.txt", "two.txt", "inner"}
    assert entries["one.txt"].type == FileType.FILE
    assert entries["one.txt"].path == f"{base}/one.txt"
    assert entries["two.txt"].size == 2
    assert entries["inner"].type == FileType.DIR
    deep = {e.path for e in sbx.files.list(base, depth=2)}
    assert f"{base}/inner/three.txt" in deep


def test_exists_and_get_info(sbx):
    path = f"{DIR}/info.txt"
    sbx.files.write(path, "12345")
    assert sbx.files.exists(path) is True
    assert sbx.files.exists(f"{DIR}/nothing-here") is False
    info = sbx.files.get_info(path)
    assert info.name == "info.txt"
    assert info.path == path
    assert info.type == FileType.FILE
    assert info.size == 5
    assert info.owner == "user"
    assert info.permissions.startswith("-rw")
    assert info.modified_time is not None
    assert sbx.files.get_info(DIR).type == FileType.DIR
    with pytest.raises(FileNotFoundException):
        sbx.files.get_info(f"{DIR}/nothing-here")


def test_make_dir(sbx):
    path = f"{DIR}/made/a/b"  # parents too
    assert sbx.files.make_dir(path) is True
    assert sbx.files.get_info(path).type == FileType.DIR
    assert sbx.files.make_dir(path) is False  # already exists


def test_rename(sbx):
    src, dst = f"{DIR}/before.txt", f"{DIR}/after.txt"
    sbx.files.write(src, "moved")
    info = sbx.files.rename(src, dst)
    assert info.path == dst
    assert info.name == "after.txt"
    assert sbx.files.exists(src) is False
    assert sbx.files.read(dst) == "moved"


def test_remove(sbx):
    path = f"{DIR}/doomed.txt"
    sbx.files.write(path, "x")
    sbx.files.remove(path)
    assert sbx.files.exists(path) is False
    tree = f"{DIR}/doomed-dir"
    sbx.files.write(f"{tree}/inside/f.txt", "x")
    sbx.files.remove(tree)
    assert sbx.files.exists(tree) is False


def test_read_missing_raises(sbx):
    with pytest.raises(FileNotFoundException):
        sbx.files.read(f"{DIR}/missing.txt")


def test_list_missing_raises(sbx):
    with pytest.raises(FileNotFoundException):
        sbx.files.list(f"{DIR}/missing-dir")


def test_read_forbidden_as_user(sbx):
    sbx.files.write("/root/private.txt", "no", user="root")
    # /root is not the default user's: a permission error, not a missing file.
    with pytest.raises(SandboxException) as info:
        sbx.files.read("/root/private.txt")
    assert not isinstance(info.value, FileNotFoundException), info.value


def test_watch_dir_polling(sbx):
    watched = f"{DIR}/watched"
    sbx.files.make_dir(watched)
    handle = sbx.files.watch_dir(watched)
    try:
        sbx.files.write(f"{watched}/new.txt", "hello")
        events = []

        def seen():
            events.extend(handle.get_new_events())
            return [e for e in events if e.name == "new.txt"
                    and e.type in (FilesystemEventType.CREATE, FilesystemEventType.WRITE)]

        wait_until(seen, timeout=30, interval=0.5, what="a create/write event for new.txt")
        sbx.files.remove(f"{watched}/new.txt")
        wait_until(lambda: seen() and [e for e in events if e.type == FilesystemEventType.REMOVE],
                   timeout=30, interval=0.5, what="a remove event for new.txt")
    finally:
        handle.stop()


def test_watch_dir_recursive(sbx):
    watched = f"{DIR}/watched-deep"
    sbx.files.make_dir(f"{watched}/sub")
    handle = sbx.files.watch_dir(watched, recursive=True)
    try:
        sbx.files.write(f"{watched}/sub/inner.txt", "hello")
        events = []

        def seen():
            events.extend(handle.get_new_events())
            return [e for e in events if e.name.endswith("inner.txt")]

        wait_until(seen, timeout=30, interval=0.5, what="an event for sub/inner.txt")
    finally:
        handle.stop()


# Calls gated on an envd newer than the reported 0.5.7 fail in the SDK, before any request.

def test_reported_envd_version(sbx):
    from conftest import ENVD_VERSION
    assert sbx.get_info().envd_version == ENVD_VERSION


def test_write_metadata_needs_newer_envd(sbx):
    with pytest.raises(TemplateException, match="envd 0.6.2"):
        sbx.files.write(f"{DIR}/meta.txt", "x", metadata={"owner": "me"})
    assert sbx.files.exists(f"{DIR}/meta.txt") is False


def test_watch_include_entry_needs_newer_envd(sbx):
    with pytest.raises(TemplateException, match="update the template"):
        sbx.files.watch_dir(DIR, include_entry=True)


def test_watch_network_mounts_needs_newer_envd(sbx):
    with pytest.raises(TemplateException, match="update the template"):
        sbx.files.watch_dir(DIR, allow_network_mounts=True)
