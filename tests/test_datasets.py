"""minidl.data.datasets: download, checksum, extraction, offline folders, corrupt files, and the real data.

The download path runs against small archives the tests build (tiny IDX gz files, a tiny CIFAR binary tar,
a tiny CMP-like zip of JPG/PNG), served by http.server on 127.0.0.1; the datasets' ``mirrors`` and
``resources`` class attributes are pointed at it. The real-data tests read shared/data (next to the
repository, or $MINIDL_DATA) and skip when it is not there.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import re
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
from minidl.data import DataLoader, transforms as T
from minidl.data.datasets import (CIFAR10, MNIST, ChecksumError, CorruptFileError, DatasetNotFoundError,
                                  DownloadError, Facades, FashionMNIST, UnsafeArchiveError, download_url,
                                  extract_archive)
from minidl.data.datasets.facades import CMP_TO_5
from minidl.data.datasets.mnist import read_idx

MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files a download or extraction may have left behind."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".part")]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache folder and no MINIDL_DATA, unless it sets them."""
    monkeypatch.setenv("MINIDL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIDL_DATA", raising=False)


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving the folder ``server.folder``; ``server.url`` ends with '/'."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/redirect-out":  # a redirect to plain http elsewhere: must not be followed
                self.send_response(302)
                self.send_header("Location", "http://example.com/f.gz")
                self.end_headers()
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.folder = folder
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


# ------------------------------------------------------------------------------------------- builders
def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes((0, 0, 8, array.ndim)) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(folder: Path, rng, n_train: int = 12, n_test: int = 5, hw=(6, 5)) -> dict:
    """The four IDX gz files of a tiny MNIST-like set; returns their arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train).astype(np.uint8),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test).astype(np.uint8)}
    for name, a in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(a)))
    return arrays


def official_content(monkeypatch, cls, arrays: dict) -> None:
    """Make ``arrays`` (as ``write_mnist`` returns them) the official content of ``cls``: the MD5s its files'
    decompressed bytes are checked against become theirs."""
    table = {name.removesuffix(".gz"): hashlib.md5(idx_bytes(a)).hexdigest() for name, a in arrays.items()}
    monkeypatch.setattr(cls, "content_md5s", table, raising=False)


def write_uncompressed(folder: Path, arrays: dict) -> None:
    """The IDX files of ``arrays`` (as ``write_mnist`` returns them), without gzip."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        (folder / name.removesuffix(".gz")).write_bytes(idx_bytes(a))


def point_at(monkeypatch, cls, url: str, folder: Path, names: list[str], wrong: set[str] = frozenset()):
    """Make ``cls`` download ``names`` from ``url`` with the MD5s of the files in ``folder``."""
    resources = [(n, "0" * 32 if n in wrong else md5(folder / n)) for n in names]
    monkeypatch.setattr(cls, "mirrors", [url])
    monkeypatch.setattr(cls, "resources", resources)


def cifar_records(rng, n: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """n random CIFAR records: (images NHWC, labels, the record bytes: label, R plane, G plane, B plane)."""
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    records = np.concatenate([labels[:, None], images.transpose(0, 3, 1, 2).reshape(n, -1)], axis=1)
    return images, labels, records.tobytes()


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes, **info) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    for k, v in info.items():
        setattr(member, k, v)
    tf.addfile(member, io.BytesIO(data))


def write_cifar_tar(path: Path, rng, per_file: int = 3, mode: str = "w:gz", extra=()) -> dict:
    """A tiny CIFAR-10 binary archive; returns {file name: (images, labels)}."""
    content = {}
    with tarfile.open(path, mode) as tf:
        for f in CIFAR10.train_list + CIFAR10.test_list:
            images, labels, data = cifar_records(rng, per_file)
            content[f] = (images, labels)
            add_bytes(tf, f"cifar-10-batches-bin/{f}", data)
        add_bytes(tf, "cifar-10-batches-bin/batches.meta.txt", "\n".join(CIFAR10.classes).encode() + b"\n")
        for name, data, info in extra:
            add_bytes(tf, name, data, **info)
    return content


def write_cmp_zip(path: Path, rng, prefix: str = "cmp_b", n: int = 10, extra=()) -> None:
    """A CMP-like zip: <folder>/cmp_b0001.jpg + .png (palette, class ids 1..12) + .xml, random sizes."""
    Image = pytest.importorskip("PIL.Image")
    folder = "base" if prefix == "cmp_b" else "extended"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{folder}/label_names.txt", "background\nfacade\n")
        for k in range(1, n + 1):
            h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
            photo, buf = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), io.BytesIO()
            photo.save(buf, format="JPEG", quality=90)
            zf.writestr(f"{folder}/{prefix}{k:04d}.jpg", buf.getvalue())
            ids = rng.integers(1, 13, (h, w)).astype(np.uint8)
            label_map = Image.frombytes("P", (w, h), ids.tobytes())
            label_map.putpalette(list(rng.integers(0, 256, 13 * 3)))
            buf = io.BytesIO()
            label_map.save(buf, format="PNG")
            zf.writestr(f"{folder}/{prefix}{k:04d}.png", buf.getvalue())
            zf.writestr(f"{folder}/{prefix}{k:04d}.xml", "<annotation/>")
        for name, data in extra:
            zf.writestr(name, data)


# ---------------------------------------------------------------------------------- MNIST-style download
def test_mnist_download_checks_and_reads(server, tmp_path, monkeypatch, rng):
    arrays = write_mnist(server.folder, rng)
    point_at(monkeypatch, FashionMNIST, server.url, server.folder, MNIST_FILES)
    official_content(monkeypatch, FashionMNIST, arrays)
    root = tmp_path / "data"
    train = FashionMNIST(root, train=True, download=True)
    assert sorted(p.name for p in root.iterdir()) == sorted(MNIST_FILES)
    np.testing.assert_array_equal(train.data, arrays["train-images-idx3-ubyte.gz"])
    assert train.targets.dtype == np.int64
    np.testing.assert_array_equal(train.targets, arrays["train-labels-idx1-ubyte.gz"])
    image, label = train[3]
    assert image.shape == (6, 5) and image.dtype == np.uint8 and isinstance(label, int)
    monkeypatch.setattr(FashionMNIST, "mirrors", ["https://127.0.0.1:9/unreachable/"])
    test = FashionMNIST(root, train=False, download=True)  # present: read offline, nothing fetched
    np.testing.assert_array_equal(test.data, arrays["t10k-images-idx3-ubyte.gz"])


def test_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch, rng):
    write_mnist(server.folder, rng)
    point_at(monkeypatch, MNIST, server.url, server.folder, MNIST_FILES, wrong={"train-labels-idx1-ubyte.gz"})
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match=r"(?s)could not download train-labels-idx1-ubyte\.gz.*MD5 of the "
                                            r"downloaded file is [0-9a-f]{32}, the published one is 0{32}"):
        MNIST(root, download=True)
    assert not (root / "train-labels-idx1-ubyte.gz").exists() and leftovers(root) == []


def test_download_tries_each_mirror_and_names_them(server, tmp_path, rng):
    (server.folder / "good").mkdir()
    (server.folder / "good" / "f.bin").write_bytes(b"payload")
    dest = tmp_path / "out" / "f.bin"
    mirrors = [server.url + "missing/f.bin", server.url + "good/f.bin"]
    download_url(mirrors, dest, md5=hashlib.md5(b"payload").hexdigest())
    assert dest.read_bytes() == b"payload"
    with pytest.raises(DownloadError, match=r"(?s)missing/f\.bin: HTTP Error 404.*also/f\.bin: HTTP Error 404"):
        download_url([server.url + "missing/f.bin", server.url + "also/f.bin"], tmp_path / "out" / "g.bin")
    assert not (tmp_path / "out" / "g.bin").exists() and leftovers(tmp_path / "out") == []


def test_plain_http_to_another_host_is_refused(server, tmp_path):
    with pytest.raises(DownloadError, match="refusing to download http://example.com/f.gz: only https"):
        download_url(["http://example.com/f.gz"], tmp_path / "f.gz")
    with pytest.raises(DownloadError, match=r"redirect-out: refusing to download http://example\.com/f\.gz"):
        download_url([server.url + "redirect-out"], tmp_path / "f.gz")
    assert not (tmp_path / "f.gz").exists()


def test_truncated_gz_is_named(tmp_path, monkeypatch, rng):
    official_content(monkeypatch, MNIST, write_mnist(tmp_path, rng))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(CorruptFileError, match=r"train-images-idx3-ubyte\.gz: the gzip stream is damaged or "
                                               r"truncated.*Delete it and run again with download=True"):
        MNIST(tmp_path)


def test_local_file_with_other_content_is_refused(tmp_path, rng):
    write_mnist(tmp_path, rng)  # not the official content, under the official names
    with pytest.raises(CorruptFileError, match=r"train-images-idx3-ubyte\.gz: the MD5 of its decompressed content "
                                               r"is [0-9a-f]{32}, but the official file's is "
                                               r"6bbc9ace898e44ae57da46a324031adb: this is not the official data "
                                               r"set's content.*pass check_content=False"):
        MNIST(tmp_path)


def test_idx_structure_errors(tmp_path):
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    cases = {"magic": (b"\x00\x00\x09\x03" + good[4:], "wrong IDX magic number 00000903"),
             "short": (good[:-1], r"truncated: the header promises \(2, 3, 3\) = 18 bytes, the file holds 17"),
             "long": (good + b"\x00", "more data than"),
             "header": (good[:6], "ends inside the IDX header")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CorruptFileError, match=message):
            read_idx(tmp_path / name, 3)
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CorruptFileError, match="gzip"):
        read_idx(tmp_path / "x.gz", 3)


def test_idx_header_with_a_flipped_size_bit_is_refused_before_allocating(tmp_path):
    # (2 + 2**31, 28, 28) would be a 1.6 TB array: refused by the file size, not by MemoryError.
    data = bytearray(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    data[4] ^= 0x80
    (tmp_path / "images").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"images: the IDX data is truncated: the header promises "
                                               r"\(2147483650, 28, 28\) = 1683627181600 bytes, the file holds 1568"):
        read_idx(tmp_path / "images", 3)
    # The gzip trailer records the size modulo 2**32, the same here (2**31 * 784 is a multiple of 2**32).
    (tmp_path / "images.gz").write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(CorruptFileError, match=r"images\.gz: the IDX header promises \(2147483650, 28, 28\) = "
                                               r"1683627181600 bytes of data, more than a \d+-byte gzip file can "
                                               r"hold"):
        read_idx(tmp_path / "images.gz", 3)
    data[4] ^= 0x80
    data[7] ^= 0x01  # 3 images promised, 2 there
    (tmp_path / "three.gz").write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(CorruptFileError, match=r"three\.gz: the gzip stream is damaged or truncated: the IDX "
                                               r"header promises \(3, 28, 28\) = 2352 bytes of data \(2368 with "
                                               r"the header\), but the gzip trailer records 1584 bytes"):
        read_idx(tmp_path / "three.gz", 3)
    (tmp_path / "ok.gz").write_bytes(gzip.compress(idx_bytes(np.ones((2, 28, 28), np.uint8))))
    np.testing.assert_array_equal(read_idx(tmp_path / "ok.gz", 3), np.ones((2, 28, 28), np.uint8))


def test_uncompressed_idx_files_are_read(tmp_path, monkeypatch, rng):
    arrays = write_mnist(tmp_path / "gz", rng)
    official_content(monkeypatch, MNIST, arrays)
    write_uncompressed(tmp_path, arrays)
    ds = MNIST(tmp_path, train=False)
    np.testing.assert_array_equal(ds.data, arrays["t10k-images-idx3-ubyte.gz"])


def flip_label(path: Path, index: int) -> int:
    """Change label ``index`` of an uncompressed labels file to another valid class; return the new label.

    The modification time moves on by a second, so that a decoded copy of the old content (kept under the
    file's path, size and modification time) is not taken for this one where timestamps are coarse."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[8 + index] = (data[8 + index] + 1) % 10  # after the 8-byte header: magic, count
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return data[8 + index]


def test_uncompressed_copy_with_a_flipped_label_byte_is_refused(tmp_path, monkeypatch, rng):
    arrays = write_mnist(tmp_path / "gz", rng)
    official_content(monkeypatch, MNIST, arrays)
    write_uncompressed(tmp_path, arrays)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    official = md5(labels)
    flip_label(labels, 2)
    message = (f"{labels}: the MD5 of its content is {md5(labels)}, but the official file's is {official}: this is "
               f"not the official data set's content (it is damaged or was modified). The file was not used.")
    with pytest.raises(CorruptFileError, match=re.escape(message) + ".*pass check_content=False"):
        MNIST(tmp_path, train=False)


def test_recompressed_gz_with_official_content_is_accepted(tmp_path, monkeypatch, rng):
    # "Official" .gz files (level 9, this minute's time in the header) and a copy compressed again at level 1
    # with another time: other bytes, another .gz MD5, the same content.
    arrays = write_mnist(tmp_path / "official", rng)
    point_at(monkeypatch, MNIST, "https://127.0.0.1:9/unused/", tmp_path / "official", MNIST_FILES)
    official_content(monkeypatch, MNIST, arrays)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, a in arrays.items():
        (copy / name).write_bytes(gzip.compress(idx_bytes(a), compresslevel=1, mtime=12345))
        assert md5(copy / name) != md5(tmp_path / "official" / name)
    train = MNIST(copy, train=True)
    np.testing.assert_array_equal(train.data, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(train.targets, arrays["train-labels-idx1-ubyte.gz"])


def test_damaged_gz_is_refused(tmp_path, monkeypatch, rng):
    arrays = write_mnist(tmp_path, rng)
    official_content(monkeypatch, MNIST, arrays)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    # Stored (level 0) deflate: a flipped byte in the middle changes one content byte, which only the CRC sees.
    images.write_bytes(gzip.compress(idx_bytes(arrays[images.name]), compresslevel=0))
    point_at(monkeypatch, MNIST, "https://127.0.0.1:9/unused/", tmp_path, MNIST_FILES)  # its .gz MD5 is official
    data = bytearray(images.read_bytes())
    data[len(data) // 2] ^= 0xFF
    images.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"train-images-idx3-ubyte\.gz: the gzip stream is damaged or "
                                               r"truncated \(CRC check failed"):
        MNIST(tmp_path)
    # Compressed for real (a mostly blank image compresses): the flip breaks the stream or its CRC.
    blank = np.zeros_like(arrays[images.name])
    blank[:, 2:4, 1:3] = 255
    official_content(monkeypatch, MNIST, {**arrays, images.name: blank})
    data = bytearray(gzip.compress(idx_bytes(blank)))
    data[len(data) // 2] ^= 0x10
    images.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"train-images-idx3-ubyte\.gz: .*gzip stream is damaged"):
        MNIST(tmp_path)
    assert decoded_copies(tmp_path / "cache") == {}


def test_check_content_false_reads_a_modified_copy(tmp_path, monkeypatch, rng):
    arrays = write_mnist(tmp_path / "gz", rng)
    official_content(monkeypatch, MNIST, arrays)
    write_uncompressed(tmp_path, arrays)
    new_label = flip_label(tmp_path / "t10k-labels-idx1-ubyte", 3)
    ds = MNIST(tmp_path, train=False, check_content=False)
    assert ds.targets[3] == new_label
    assert decoded_copies(tmp_path / "cache") == {}  # unchecked content never becomes a trusted copy
    with pytest.raises(CorruptFileError, match="not the official data set's content"):
        MNIST(tmp_path, train=False)


def test_uncompressed_file_is_hashed_once(tmp_path, monkeypatch, rng):
    arrays = write_mnist(tmp_path / "gz", rng)
    official_content(monkeypatch, MNIST, arrays)
    write_uncompressed(tmp_path / "data", arrays)
    MNIST(tmp_path / "data", train=True)

    def must_not_run(*args):
        raise AssertionError("the file was hashed and decoded again although its decoded copy is good")

    monkeypatch.setattr("minidl.data.datasets.mnist.read_idx", must_not_run)
    np.testing.assert_array_equal(MNIST(tmp_path / "data", train=True).data, arrays["train-images-idx3-ubyte.gz"])


def decoded_copies(cache: Path, name: str = "mnist") -> dict[str, Path]:
    """The decoded copies of IDX files in a cache folder, by the name of the ``.npy``."""
    return {p.name: p for p in (cache / name).glob("derived-*/*.npy")}


def test_gz_is_decoded_once_then_read_from_its_decoded_copy(tmp_path, monkeypatch, rng):
    # Tiny official-named gz files whose content is made the official one, so the content check runs.
    data = tmp_path / "readonly-copy"
    arrays = write_mnist(data, rng)
    official_content(monkeypatch, MNIST, arrays)
    first = MNIST(data, train=True)
    assert sorted(p.name for p in data.iterdir()) == sorted(MNIST_FILES)  # nothing written beside the data
    copies = decoded_copies(tmp_path / "cache")
    assert sorted(copies) == ["train-images-idx3-ubyte.npy", "train-labels-idx1-ubyte.npy"]
    assert leftovers(tmp_path / "cache") == []

    def must_not_run(*args):
        raise AssertionError("the .gz was checked or decoded again although its decoded copy is good")

    monkeypatch.setattr("minidl.data.datasets.mnist.read_idx", must_not_run)
    second = MNIST(data, train=True)
    np.testing.assert_array_equal(second.data, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(second.targets, first.targets)
    assert second.data.dtype == np.uint8 and second.targets.dtype == np.int64


def test_changed_gz_is_checked_and_decoded_afresh(tmp_path, monkeypatch, rng):
    data = tmp_path / "data"
    write_mnist(data, rng)
    monkeypatch.setattr(MNIST, "content_md5s", {}, raising=False)  # no official content: structure only
    MNIST(data, train=False)
    new = write_mnist(data, rng, n_test=7)  # other images and labels, another size
    test = MNIST(data, train=False)
    np.testing.assert_array_equal(test.data, new["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(test.targets, new["t10k-labels-idx1-ubyte.gz"])
    # Now a replacement of the same size: the modification time alone must tell the copies apart.
    images = data / "t10k-images-idx3-ubyte.gz"
    stat = images.stat()
    same_size = rng.integers(0, 256, (7, 6, 5), dtype=np.uint8)
    images.write_bytes(gzip.compress(idx_bytes(same_size), mtime=0))
    while images.stat().st_size != stat.st_size:  # gzip sizes vary with content: retry until equal
        same_size = rng.integers(0, 256, (7, 6, 5), dtype=np.uint8)
        images.write_bytes(gzip.compress(idx_bytes(same_size), mtime=0))
    os.utime(images, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    np.testing.assert_array_equal(MNIST(data, train=False).data, same_size)


def test_damaged_decoded_copy_is_made_again(tmp_path, monkeypatch, rng):
    data = tmp_path / "data"
    arrays = write_mnist(data, rng)
    monkeypatch.setattr(MNIST, "content_md5s", {}, raising=False)  # no official content: structure only
    MNIST(data, train=True)
    copy = decoded_copies(tmp_path / "cache")["train-images-idx3-ubyte.npy"]
    for damage in (copy.read_bytes()[:-7], b"", np.lib.format.magic(1, 0) + b"garbage"):
        copy.write_bytes(damage)
        np.testing.assert_array_equal(MNIST(data, train=True).data, arrays["train-images-idx3-ubyte.gz"])
        np.testing.assert_array_equal(np.load(copy), arrays["train-images-idx3-ubyte.gz"])  # whole again
    np.save(copy, np.zeros((2, 3), np.int64))  # a whole .npy, but not what an idx3 file decodes to
    np.testing.assert_array_equal(MNIST(data, train=True).data, arrays["train-images-idx3-ubyte.gz"])


def test_no_decoded_copy_of_a_file_that_fails_its_checksum(tmp_path, rng):
    write_mnist(tmp_path / "data", rng)  # not the official bytes, under the official names
    with pytest.raises(CorruptFileError, match="the MD5 of its decompressed content is"):
        MNIST(tmp_path / "data")
    assert decoded_copies(tmp_path / "cache") == {}


def test_unwritable_cache_warns_and_still_reads(tmp_path, monkeypatch, rng):
    data = tmp_path / "data"
    arrays = write_mnist(data, rng)
    monkeypatch.setattr(MNIST, "content_md5s", {}, raising=False)  # no official content: structure only
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("MINIDL_CACHE", str(tmp_path / "not-a-folder"))
    with pytest.warns(UserWarning, match=r"MNIST: could not keep a decoded copy of .*t10k-(images|labels)-idx[13]"
                                         r"-ubyte\.gz .*it will be decoded again next time") as record:
        test = MNIST(data, train=False)
    assert len(record) == 2  # one for the images, one for the labels
    np.testing.assert_array_equal(test.data, arrays["t10k-images-idx3-ubyte.gz"])


def test_missing_files_message(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        FashionMNIST(tmp_path / "nowhere")
    message = str(err.value)
    for part in ("FashionMNIST", str(tmp_path / "nowhere"), "train-images-idx3-ubyte.gz",
                 "train-labels-idx1-ubyte.gz", "--data-dir", "MINIDL_DATA", "download=True"):
        assert part in message


def test_root_lookup_order(tmp_path, monkeypatch, rng):
    write_mnist(tmp_path / "shared" / "fashion-mnist", rng)
    monkeypatch.setattr(FashionMNIST, "content_md5s", {}, raising=False)
    assert FashionMNIST(tmp_path / "shared").root == tmp_path / "shared" / "fashion-mnist"  # a parent folder
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "shared"))
    assert FashionMNIST().root == tmp_path / "shared" / "fashion-mnist"
    monkeypatch.delenv("MINIDL_DATA")
    write_mnist(tmp_path / "cache" / "fashion-mnist", rng)
    assert FashionMNIST().root == tmp_path / "cache" / "fashion-mnist"


def test_batched_fetch_equals_per_sample(tmp_path, monkeypatch, rng):
    write_mnist(tmp_path, rng, n_train=20)
    monkeypatch.setattr(MNIST, "content_md5s", {}, raising=False)  # no official content: structure only
    ds = MNIST(tmp_path, transform=T.Compose([T.ToTensor(), T.Normalize([0.5], [0.25])]))
    batch = ds.__getitems__([3, 17, 0])
    x, y = next(iter(DataLoader(ds, batch_size=3, sampler=[3, 17, 0])))
    assert x.shape == (3, 1, 6, 5) and x.dtype == np.float32 and y.dtype == np.int64
    for k, i in enumerate([3, 17, 0]):
        np.testing.assert_array_equal(batch.fields[0].numpy()[k], ds[i][0].numpy())
        np.testing.assert_array_equal(x.numpy()[k], ds[i][0].numpy())
    slow = MNIST(tmp_path, transform=T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)]))
    assert isinstance(slow.__getitems__([1, 2]), list)
    np.testing.assert_allclose(next(iter(DataLoader(slow, batch_size=2)))[0].numpy()[1, 0],
                               2 * ds.data[1].astype(np.float64) / 255, rtol=1e-6)


# --------------------------------------------------------------------------------------------- CIFAR-10
def test_cifar_download_extract_and_decode(server, tmp_path, monkeypatch, rng):
    content = write_cifar_tar(server.folder / "cifar-10-binary.tar.gz", rng)
    point_at(monkeypatch, CIFAR10, server.url, server.folder, ["cifar-10-binary.tar.gz"])
    monkeypatch.setattr(CIFAR10, "records_per_file", 3)
    root = tmp_path / "cifar"
    train = CIFAR10(root, train=True, download=True)
    assert train.data.shape == (15, 32, 32, 3) and train.targets.dtype == np.int64
    np.testing.assert_array_equal(train.data[3:6], content["data_batch_2.bin"][0])
    np.testing.assert_array_equal(train.targets[-3:], content["data_batch_5.bin"][1])
    assert (root / "cifar-10-batches-bin" / "test_batch.bin").is_file() and leftovers(root) == []
    (root / "cifar-10-binary.tar.gz").unlink()
    test = CIFAR10(root, train=False)  # offline, from the extracted folder
    np.testing.assert_array_equal(test.data, content["test_batch.bin"][0])
    assert test.classes[0] == "airplane"


def test_cifar_local_xz_archive_is_cached_outside_the_data_folder(tmp_path, monkeypatch, rng):
    folder = tmp_path / "readonly-copy"
    folder.mkdir()
    content = write_cifar_tar(folder / "cifar-10-binary.tar.xz", rng, mode="w:xz")
    monkeypatch.setattr(CIFAR10, "records_per_file", 3)
    test = CIFAR10(folder, train=False)
    np.testing.assert_array_equal(test.data, content["test_batch.bin"][0])
    assert [p.name for p in folder.iterdir()] == ["cifar-10-binary.tar.xz"]
    cached = list((tmp_path / "cache" / "cifar-10").glob("derived-*/cifar-10-batches-bin/data_batch_1.bin"))
    assert len(cached) == 1
    cached[0].write_bytes(cached[0].read_bytes()[:-5])  # a damaged cache is rebuilt, not used
    np.testing.assert_array_equal(CIFAR10(folder, train=True).data[:3], content["data_batch_1.bin"][0])


def test_cifar_truncated_record_file(tmp_path, monkeypatch, rng):
    monkeypatch.setattr(CIFAR10, "records_per_file", 3)
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    for f in CIFAR10.train_list:
        (d / f).write_bytes(cifar_records(rng, 3)[2])
    (d / "data_batch_4.bin").write_bytes((d / "data_batch_4.bin").read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match=r"data_batch_4\.bin: data_batch_4\.bin is truncated: 9119 bytes is "
                                               r"not a whole number of 3073-byte records.*download=True"):
        CIFAR10(tmp_path)
    (d / "data_batch_4.bin").write_bytes(cifar_records(rng, 2)[2])
    with pytest.raises(CorruptFileError, match="holds 2 records, the binary version has 3"):
        CIFAR10(tmp_path)


def test_cifar_archive_with_escaping_member_is_refused(tmp_path, monkeypatch, rng):
    monkeypatch.setattr(CIFAR10, "records_per_file", 3)
    folder = tmp_path / "data"
    folder.mkdir()
    write_cifar_tar(folder / "cifar-10-binary.tar", rng, mode="w", extra=[("../evil.txt", b"x", {})])
    with pytest.raises(UnsafeArchiveError, match=r"member '\.\./evil\.txt' would be written outside"):
        CIFAR10(folder)
    assert not (tmp_path / "evil.txt").exists()


def test_cifar_missing_message(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)CIFAR10.*cifar-10-batches-bin/.*cifar-10-binary\.tar\.gz"
                                                   r".*download=True"):
        CIFAR10(tmp_path)


# ----------------------------------------------------------------------------------- safe extraction
@pytest.mark.parametrize("name, info, message", [
    ("../escape.txt", {}, "would be written outside"),
    ("/abs/escape.txt", {}, "would be written outside"),
    ("inner/../../escape.txt", {}, "would be written outside"),
    ("link", {"type": tarfile.SYMTYPE, "linkname": "../../escape.txt"}, "is a symbolic link"),
    ("link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "is a symbolic link"),
    ("hard", {"type": tarfile.LNKTYPE, "linkname": "../escape.txt"}, "is a hard link"),
    ("dev", {"type": tarfile.CHRTYPE}, "is a device file"),
])
def test_extract_refuses_unsafe_tar_members(tmp_path, name, info, message):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        add_bytes(tf, "ok.txt", b"fine")
        add_bytes(tf, name, b"" if info else b"bad", **info)
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, dest)
    assert not (dest / "ok.txt").exists() and not (tmp_path / "out" / "escape.txt").exists()


def test_extract_refuses_unsafe_zip_members(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr("../escape.txt", "bad")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./escape\.txt' would be written outside"):
        extract_archive(archive, tmp_path / "dest")
    link = zipfile.ZipInfo("link")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(tmp_path / "b.zip", tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()


def test_extract_safe_archives_and_damaged_ones(tmp_path):
    archive = tmp_path / "a.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tf:
        add_bytes(tf, "dir/file.txt", b"hello")
        add_bytes(tf, "dir/sub/other.txt", b"world")
    extract_archive(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "dir" / "file.txt").read_bytes() == b"hello"
    assert (tmp_path / "dest" / "dir" / "sub" / "other.txt").read_bytes() == b"world"
    (tmp_path / "bad.tar.gz").write_bytes(archive.read_bytes()[:40])
    with pytest.raises(CorruptFileError, match=r"bad\.tar\.gz"):
        extract_archive(tmp_path / "bad.tar.gz", tmp_path / "dest2")


# ---------------------------------------------------------------------------------------------- Facades
def expected_facade(zip_path: Path, stem: str):
    """What preparation must make of one photo / label map: PIL bicubic and nearest resizes to 256."""
    from PIL import Image
    with zipfile.ZipFile(zip_path) as zf:
        folder = "base" if stem.startswith("cmp_b") else "extended"
        photo = Image.open(io.BytesIO(zf.read(f"{folder}/{stem}.jpg"))).convert("RGB")
        label_map = Image.open(io.BytesIO(zf.read(f"{folder}/{stem}.png")))
        return (np.asarray(photo.resize((256, 256), Image.Resampling.BICUBIC)),
                np.asarray(label_map.resize((256, 256), Image.Resampling.NEAREST)), photo.size[::-1])


def test_facades_download_and_prepare(server, tmp_path, monkeypatch, rng):
    write_cmp_zip(server.folder / "CMP_facade_DB_base.zip", rng, n=10)
    point_at(monkeypatch, Facades, server.url, server.folder, ["CMP_facade_DB_base.zip"])
    root = tmp_path / "facades"
    train = Facades(root, split="train", download=True)
    val, test = Facades(root, split="val"), Facades(root, split="test")
    assert (len(train), len(val), len(test)) == (8, 1, 1)
    assert sorted(p.name for p in root.iterdir()) == ["CMP_facade_DB_base.zip", "test.npz", "train.npz", "val.npz"]
    ids = [f"cmp_b{k:04d}" for k in range(1, 11)]
    perm = np.random.default_rng(0).permutation(10)
    assert list(train.ids) == sorted(ids[p] for p in perm[:8]) and list(test.ids) == [ids[perm[9]]]
    image, labels12, hw = expected_facade(server.folder / "CMP_facade_DB_base.zip", train.ids[2])
    np.testing.assert_array_equal(train.data[2], image)
    np.testing.assert_array_equal(train.labels_cmp12[2], labels12)
    np.testing.assert_array_equal(train.labels[2], CMP_TO_5[labels12])
    assert tuple(train.orig_hw[2]) == hw
    photo, target = train[2]
    assert photo.shape == (256, 256, 3) and target.dtype == np.int64 and target.max() <= 4
    assert train.targets.shape == (8, 256, 256) and train.targets.dtype == np.int64


def test_facades_prepared_from_a_found_archive_go_to_the_cache(tmp_path, rng):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_cmp_zip(folder / "CMP_facade_DB_base.zip", rng, n=6)
    val = Facades(folder, split="val")
    assert len(val) == 1 and [p.name for p in folder.iterdir()] == ["CMP_facade_DB_base.zip"]
    assert len(list((tmp_path / "cache" / "facades").glob("derived-*/train.npz"))) == 1


def test_facades_extended(tmp_path, rng):
    write_cmp_zip(tmp_path / "CMP_facade_DB_base.zip", rng, n=10)
    write_cmp_zip(tmp_path / "CMP_facade_DB_extended.zip", rng, prefix="cmp_x", n=3)
    train = Facades(tmp_path, split="train", extended=True)
    assert len(train) == 11 and sum(i.startswith("cmp_x") for i in train.ids) == 3
    assert len(Facades(tmp_path, split="test", extended=True)) == 1


def test_facades_zip_with_escaping_member_is_refused(tmp_path, rng):
    write_cmp_zip(tmp_path / "CMP_facade_DB_base.zip", rng, n=2, extra=[("../../evil.jpg", b"x")])
    with pytest.raises(UnsafeArchiveError, match="would be written outside"):
        Facades(tmp_path)


def test_facades_bad_label_map_names_archive_and_member(tmp_path, rng):
    Image = pytest.importorskip("PIL.Image")
    with zipfile.ZipFile(tmp_path / "CMP_facade_DB_base.zip", "w") as zf:
        for name, fmt in (("cmp_b0001.jpg", "JPEG"), ("cmp_b0001.png", "PNG")):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format=fmt)
            zf.writestr(f"base/{name}", buf.getvalue())
    with pytest.raises(CorruptFileError, match=r"CMP_facade_DB_base\.zip: member base/cmp_b0001\.png: label map "
                                               r"has mode RGB; expected an index-colour"):
        Facades(tmp_path)


def test_facades_bad_npz(tmp_path):
    np.savez(tmp_path / "train.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(CorruptFileError, match=r"train\.npz: it lacks the array\(s\) \['labels'\].*Delete it"):
        Facades(tmp_path)
    np.savez(tmp_path / "val.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros((2, 4, 4), np.uint8))
    (tmp_path / "val.npz").write_bytes((tmp_path / "val.npz").read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=r"val\.npz: not a readable \.npz file"):
        Facades(tmp_path, split="val")
    np.savez(tmp_path / "test.npz", images=np.zeros((1, 4, 4, 3), np.uint8), labels=np.full((1, 4, 4), 7, np.uint8))
    with pytest.raises(CorruptFileError, match="label 7 is out of range for 5 classes"):
        Facades(tmp_path, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        Facades(tmp_path, split="training")


def test_facades_missing_message(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)train\.npz, or CMP_facade_DB_base\.zip.*MINIDL_DATA"):
        Facades(tmp_path)


# ------------------------------------------------------------------------------------------- real data
# The environment as the session started: the autouse fixture above clears it for every test.
_START_ENV = {k: os.environ.get(k) for k in ("MINIDL_DATA", "MINIDL_CACHE")}


@pytest.fixture
def real_data(monkeypatch) -> Path:
    """shared/data: $MINIDL_DATA as the session started, else next to the repository; skip if missing.

    The cache is the real one, so the CIFAR archive is decoded once, not on every run."""
    start = _START_ENV["MINIDL_DATA"]
    folder = Path(start) if start else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"real data not found at {folder}")
    if _START_ENV["MINIDL_CACHE"]:
        monkeypatch.setenv("MINIDL_CACHE", _START_ENV["MINIDL_CACHE"])
    else:
        monkeypatch.delenv("MINIDL_CACHE", raising=False)
    return folder


def need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


def test_real_fashion_mnist(real_data):
    folder = need(real_data / "fashion-mnist")
    train, test = FashionMNIST(folder, train=True), FashionMNIST(folder, train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert train.data.dtype == np.uint8 and train.targets.dtype == np.int64
    assert np.bincount(train.targets).tolist() == [6000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    x, y = next(iter(DataLoader(FashionMNIST(folder, transform=T.ToTensor()), batch_size=64)))
    assert x.shape == (64, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.numpy().min() and x.numpy().max() <= 1


def test_real_mnist(real_data):
    # Compressed again, so its .gz MD5s are not the official ones: its content is, and that is what counts.
    folder = need(real_data / "mnist")
    train, test = MNIST(folder, train=True), MNIST(folder, train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert train.data.dtype == np.uint8 and train.targets.dtype == np.int64
    assert np.bincount(train.targets).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test.targets).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_content_md5s(real_data, tmp_path, monkeypatch):
    # The tables are the official contents; an uncompressed copy with one label changed is refused.
    monkeypatch.setenv("MINIDL_CACHE", str(tmp_path / "cache"))  # what this test decodes is not worth keeping
    for cls in (MNIST, FashionMNIST):
        folder = need(real_data / cls.name)
        for stem, official in cls.content_md5s.items():
            with gzip.open(folder / (stem + ".gz"), "rb") as f:
                assert hashlib.md5(f.read()).hexdigest() == official, (cls.name, stem)
    copy = tmp_path / "fashion-copy"
    copy.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(real_data / "fashion-mnist" / (stem + ".gz"), "rb") as f:
            (copy / stem).write_bytes(f.read())
    assert len(FashionMNIST(copy, train=False)) == 10000
    flip_label(copy / "t10k-labels-idx1-ubyte", 0)
    with pytest.raises(CorruptFileError, match=r"t10k-labels-idx1-ubyte: the MD5 of its content is [0-9a-f]{32}, "
                                               r"but the official file's is 15d484375f8d13e6eb1aabb0c3f46965"):
        FashionMNIST(copy, train=False)


def test_real_cifar10(real_data):
    folder = need(real_data / "cifar-10")
    train, test = CIFAR10(folder, train=True), CIFAR10(folder, train=False)
    assert train.data.shape == (50000, 32, 32, 3) and test.data.shape == (10000, 32, 32, 3)
    assert np.bincount(train.targets).tolist() == [5000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert train.classes == CIFAR10.classes


def test_real_facades(real_data):
    folder = need(real_data / "facades")
    splits = {s: Facades(folder, split=s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 300, "val": 39, "test": 39}
    for d in splits.values():
        assert d.data.shape[1:] == (256, 256, 3) and d.data.dtype == np.uint8
        assert d.labels.shape == d.data.shape[:3] and 0 <= d.labels.min() and d.labels.max() == 4
        np.testing.assert_array_equal(d.labels, CMP_TO_5[d.labels_cmp12])
    all_ids = np.concatenate([d.ids for d in splits.values()])
    assert len(set(all_ids)) == 378
    photo, target = splits["val"][0]
    assert photo.shape == (256, 256, 3) and target.shape == (256, 256) and target.dtype == np.int64


def test_facades_joint_transforms_keep_photo_and_map_together(tmp_path, rng):
    from conftest import write_facades_folder
    write_facades_folder(tmp_path, rng, sizes=(6, 1, 1), side=16)
    plain = Facades(tmp_path, split="train")
    pipeline = T.Compose([T.RandomCrop(8), T.RandomHorizontalFlip()])
    cropped = Facades(tmp_path, split="train", transforms=pipeline, transform=T.ToTensor())
    mdl.manual_seed(5)
    batch = cropped.__getitems__([0, 1, 2, 3, 4, 5])
    images, maps = batch.fields
    assert images.shape == (6, 3, 8, 8) and maps.shape == (6, 8, 8) and maps.dtype == np.int64
    # every pixel of every window is found in its own photo with the same label at the same offset
    for k in range(6):
        window = np.round(images.numpy()[k].transpose(1, 2, 0) * 255).astype(np.uint8)
        found = [(a, b, flip) for flip in (False, True) for a in range(9) for b in range(9)
                 if np.array_equal((plain.data[k][:, ::-1] if flip else plain.data[k])[a:a + 8, b:b + 8], window)]
        assert found, f"image {k}: the window is not in its photo"
        a, b, flip = found[0]
        np.testing.assert_array_equal(maps[k], (plain.targets[k][:, ::-1] if flip else plain.targets[k])[a:a + 8, b:b + 8])
    mdl.manual_seed(5)
    one_image, one_map = cropped[0]
    assert one_image.shape == (3, 8, 8) and one_map.shape == (8, 8)
