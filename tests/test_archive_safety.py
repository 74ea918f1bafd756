"""Archive extraction never writes outside its folder: links, special files, absurd names and duplicates are
refused before anything is written, and every member's resolved path is checked.

The worst case is the CVE-2025-4517 archive, which gets past both a check of the member names and
``tarfile``'s ``filter="data"`` on Pythons without the fix (3.11.7 here): it is built below, and the test
looks for its payload outside the destination.
"""
from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

from minidl.data.datasets import CorruptFileError, Facades, UnsafeArchiveError, extract_archive
from minidl.data.datasets.download import read_tar_members


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIDL_DATA", raising=False)


def add(tf: tarfile.TarFile, name: str, data: bytes = b"", **info) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    for k, v in info.items():
        setattr(member, k, v)
    tf.addfile(member, io.BytesIO(data))


def write_cve_2025_4517_tar(path: Path) -> None:
    """A tar whose last member lands in the destination's parent, past ``filter="data"`` of unpatched Pythons.

    Sixteen nested folders with 247-character names, each reached through a one-letter link (``a`` ->
    ``ddd...``, ``ddd.../b`` -> ``ddd...``, ...): ``a/b/.../p`` is short, but it resolves to 16 x 248
    characters, past PATH_MAX (4096). ``os.path.realpath`` stops resolving links there and reads the rest as
    plain names, so the link ``a/.../p/lll...`` -> ``../`` x 16 seems to stay inside, while the kernel follows
    it back to the destination itself. ``escape`` -> ``a/.../p/lll.../..`` is then the destination's parent,
    and ``escape/sentinel.txt`` is written there.
    """
    long_dir, steps = "d" * 247, "abcdefghijklmnop"
    with tarfile.open(path, "w") as tf:
        folder = ""
        for step in steps:
            add(tf, os.path.join(folder, long_dir), type=tarfile.DIRTYPE, mode=0o755)
            add(tf, os.path.join(folder, step), type=tarfile.SYMTYPE, linkname=long_dir)
            folder = os.path.join(folder, long_dir)
        chain = os.path.join(*steps, "l" * 254)
        add(tf, chain, type=tarfile.SYMTYPE, linkname="../" * len(steps))
        add(tf, "escape", type=tarfile.SYMTYPE, linkname=chain + "/..")
        add(tf, "escape/sentinel.txt", b"written outside the destination")


def write_tar(path: Path, members) -> Path:
    """A tar of ``(name, data, TarInfo attributes)`` members."""
    with tarfile.open(path, "w") as tf:
        for name, data, info in members:
            add(tf, name, data, **info)
    return path


def test_cve_2025_4517_tar_writes_nothing_outside(tmp_path):
    archive = tmp_path / "evil.tar"
    write_cve_2025_4517_tar(archive)
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchiveError, match=r"evil\.tar: member 'a' is a symbolic link.*The archive is unsafe"):
        extract_archive(archive, dest)
    assert not (tmp_path / "out" / "sentinel.txt").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dest"] and list(dest.iterdir()) == []


def test_symlink_pointing_inside_is_refused(tmp_path):
    archive = write_tar(tmp_path / "a.tar", [("dir/file.txt", b"hello", {}),
                                             ("dir/link", b"", {"type": tarfile.SYMTYPE, "linkname": "file.txt"})])
    with pytest.raises(UnsafeArchiveError, match=r"member 'dir/link' is a symbolic link.*unsafe \(possibly "
                                                  r"malicious\)"):
        extract_archive(archive, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_hard_link_is_refused(tmp_path):
    archive = write_tar(tmp_path / "a.tar", [("ok.txt", b"fine", {}),
                                             ("hard", b"", {"type": tarfile.LNKTYPE, "linkname": "ok.txt"})])
    with pytest.raises(UnsafeArchiveError, match=r"member 'hard' is a hard link.*The archive is unsafe"):
        extract_archive(archive, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_special_members_are_refused(tmp_path, kind):
    archive = write_tar(tmp_path / "a.tar", [("ok.txt", b"fine", {}), ("special", b"", {"type": kind})])
    with pytest.raises(UnsafeArchiveError, match=r"member 'special' is a device file, FIFO or other special file"
                                                  r".*The archive is unsafe"):
        extract_archive(archive, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_symlink_chain_is_reported_unsafe_not_damaged(tmp_path):
    # 'x/out' -> 'up/..' reads as 'x' (inside), but 'x/up' -> '..' makes it the destination's parent.
    archive = write_tar(tmp_path / "a.tar", [("x", b"", {"type": tarfile.DIRTYPE}),
                                             ("x/up", b"", {"type": tarfile.SYMTYPE, "linkname": ".."}),
                                             ("x/out", b"", {"type": tarfile.SYMTYPE, "linkname": "up/.."}),
                                             ("x/out/escaped.txt", b"bad", {})])
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(archive, tmp_path / "dest")
    assert "member 'x/up' is a symbolic link" in str(err.value) and "unsafe" in str(err.value)
    assert "damaged" not in str(err.value) and "download=True" not in str(err.value)
    assert not (tmp_path / "escaped.txt").exists()


def test_facades_refuses_a_malicious_tar_under_the_cmp_archive_name(tmp_path, monkeypatch):
    # Facades extracts the CMP archive into a temporary folder: put that under tmp_path to watch its parent.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    root = tmp_path / "facades"
    root.mkdir()
    write_cve_2025_4517_tar(root / "CMP_facade_DB_base.zip")
    with pytest.raises(UnsafeArchiveError, match=r"CMP_facade_DB_base\.zip: member 'a' is a symbolic link"):
        Facades(root)
    assert not (scratch / "sentinel.txt").exists() and list(scratch.iterdir()) == []


def test_legit_nested_tar_extracts_byte_identically(tmp_path, rng):
    files = {f"top/{'/'.join('abcd'[:k])}/f{k}.bin".replace("//", "/"): rng.bytes(int(rng.integers(0, 5000)))
             for k in range(5)}
    members = [("top", b"", {"type": tarfile.DIRTYPE, "mode": 0o755}),
               ("top/a/b", b"", {"type": tarfile.DIRTYPE, "mode": 0o700})]
    members += [(name, data, {"mode": 0o6755, "uid": 0, "gid": 0}) for name, data in files.items()]
    members.append(("./top/dot.txt", b"leading ./", {}))
    for mode in ("w", "w:gz", "w:xz"):
        archive = tmp_path / f"a.{mode}.tar"
        with tarfile.open(archive, mode) as tf:
            for name, data, info in members:
                add(tf, name, data, **info)
        dest = tmp_path / f"dest-{mode}"
        extract_archive(archive, dest)
        got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
        assert got == {**files, "top/dot.txt": b"leading ./"}
        umask = os.umask(0)
        os.umask(umask)
        for p in dest.rglob("*"):
            if p.is_file():  # data, never a program: no setuid/setgid, no execute bits, whatever the tar says
                assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


def test_absurdly_long_names_are_refused(tmp_path):
    archive = write_tar(tmp_path / "a.tar", [("dir/" + "n" * 256, b"x", {})])
    with pytest.raises(UnsafeArchiveError, match=r"member 'dir/n+\.\.\.' \(260 characters\) has a 256-byte "
                                                  r"component.*at most 255"):
        extract_archive(archive, tmp_path / "dest")
    archive = write_tar(tmp_path / "b.tar", [("/".join(["n" * 200] * 21), b"x", {})])
    with pytest.raises(UnsafeArchiveError, match=r"has a name of 4220 bytes.*at most 4096"):
        extract_archive(archive, tmp_path / "dest")


def test_duplicate_members_are_refused(tmp_path):
    archive = write_tar(tmp_path / "a.tar", [("a.txt", b"first", {}), ("./a.txt", b"second", {})])
    with pytest.raises(UnsafeArchiveError, match=r"member './a\.txt' appears twice"):
        extract_archive(archive, tmp_path / "dest")
    archive = write_tar(tmp_path / "b.tar", [("a", b"file", {}), ("a/b.txt", b"under a file", {})])
    with pytest.raises(UnsafeArchiveError, match=r"member 'a' is a file, but 'a/b\.txt' needs a folder there"):
        extract_archive(archive, tmp_path / "dest2")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("a.txt", "first")
        zf.writestr("a.txt", "second")
    with pytest.raises(UnsafeArchiveError, match=r"member 'a\.txt' appears twice"):
        extract_archive(tmp_path / "c.zip", tmp_path / "dest3")
    assert [p for p in tmp_path.glob("dest*/**/*") if p.is_file()] == []


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_resolved_path_outside_is_refused(tmp_path, kind):
    # A link already in the destination (not from the archive) must not carry a member out either.
    dest, elsewhere = tmp_path / "dest", tmp_path / "elsewhere"
    dest.mkdir()
    elsewhere.mkdir()
    (dest / "sub").symlink_to(elsewhere)
    archive = tmp_path / f"a.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("sub/x.txt", "out")
    else:
        write_tar(archive, [("sub/x.txt", b"out", {})])
    message = f"member 'sub/x.txt' resolves to {elsewhere / 'x.txt'}, outside {dest}"
    with pytest.raises(UnsafeArchiveError, match=re.escape(message)):
        extract_archive(archive, dest)
    assert list(elsewhere.iterdir()) == []


def test_zip_special_member_is_refused(tmp_path):
    fifo = zipfile.ZipInfo("pipe")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr(fifo, "")
    with pytest.raises(UnsafeArchiveError, match="member 'pipe' is a device file, FIFO or other special file"):
        extract_archive(tmp_path / "a.zip", tmp_path / "dest")


def test_read_tar_members_refuses_links(tmp_path):
    archive = write_tar(tmp_path / "a.tar", [("d/wanted.bin", b"data", {}),
                                             ("d/link", b"", {"type": tarfile.SYMTYPE, "linkname": "wanted.bin"})])
    with pytest.raises(UnsafeArchiveError, match="member 'd/link' is a symbolic link"):
        read_tar_members(archive, {"d/wanted.bin"})
    archive = write_tar(tmp_path / "b.tar", [("d/wanted.bin", b"data", {}), ("d/wanted.bin", b"other", {})])
    with pytest.raises(UnsafeArchiveError, match="appears twice"):
        read_tar_members(archive, {"d/wanted.bin"})
    archive = write_tar(tmp_path / "c.tar", [("d/wanted.bin", b"data", {})])
    assert read_tar_members(archive, {"d/wanted.bin"}) == {"d/wanted.bin": b"data"}


def test_damaged_tar_is_still_reported_as_damaged(tmp_path, rng):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        add(tf, "big.bin", rng.bytes(100_000))
    (tmp_path / "cut.tar.gz").write_bytes(archive.read_bytes()[:-5000])
    with pytest.raises(CorruptFileError, match=r"cut\.tar\.gz: the tar archive is damaged or truncated") as err:
        extract_archive(tmp_path / "cut.tar.gz", tmp_path / "dest")
    assert not isinstance(err.value, UnsafeArchiveError)


def test_nul_byte_in_a_pax_name_is_refused(tmp_path):
    # A pax header can carry any byte in a name; the OS calls would fail with ValueError.
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
        add(tf, "ok.txt", b"fine")
        add(tf, "bad", b"bad", pax_headers={"path": "bad\x00name.txt"})
    with pytest.raises(UnsafeArchiveError, match=r"member 'bad\\x00name\.txt' has a NUL byte in its name"):
        extract_archive(archive, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def _patch_zip_directory(path: Path, name: bytes, offset: int, value: int) -> None:
    """Set the 2-byte field at ``offset`` of ``name``'s central directory entry (8: flags, 10: method), which
    is what ``zipfile`` reads them from."""
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")
    while data[entry + 46:entry + 46 + len(name)] != name:
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + offset:entry + offset + 2] = value.to_bytes(2, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("field, value, message", [
    (8, 0x1, r"member 'late\.txt' is encrypted"),
    (10, 9, r"member 'late\.txt' uses the unsupported compression method 9 \(supported: 0 \(stored\)"),
])
def test_unreadable_zip_members_are_refused_before_anything_is_written(tmp_path, field, value, message):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("early.txt", "written first")
        zf.writestr("late.txt", "encrypted or Deflate64")
    _patch_zip_directory(archive, b"late.txt", field, value)
    with pytest.raises(CorruptFileError, match=message) as err:
        extract_archive(archive, tmp_path / "dest")
    assert not isinstance(err.value, UnsafeArchiveError)
    assert list((tmp_path / "dest").iterdir()) == []


def test_colons_in_posix_names_are_kept_and_drive_paths_refused(tmp_path):
    archive = write_tar(tmp_path / "a.tar", [("a:b", b"colon", {}), ("d/x:/y.txt", b"deeper", {})])
    extract_archive(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "a:b").read_bytes() == b"colon"
    assert (tmp_path / "dest" / "d" / "x:" / "y.txt").read_bytes() == b"deeper"
    for name in ("C:/windows/x.txt", "c:\\x.txt"):
        archive = write_tar(tmp_path / "b.tar", [(name, b"x", {})])
        with pytest.raises(UnsafeArchiveError, match="would be written outside the destination folder"):
            extract_archive(archive, tmp_path / "dest2")
