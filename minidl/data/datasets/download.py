"""Where data sets live, and how they get there safely: download, checksum, extraction, cache.

Rules every dataset here follows:

- **Where.** The ``root`` argument, else ``$MINIDL_DATA/<name>``, else ``<cache>/<name>`` where ``<cache>`` is
  ``$MINIDL_CACHE``, else ``$XDG_CACHE_HOME/minidl``, else ``~/.cache/minidl``. A folder that holds the
  official files is read as is, offline.
- **Never a half file.** A download streams into a temporary file in the destination folder, its MD5 is
  checked against the published one, and only then is it renamed to its real name (a rename within one
  folder is atomic). Derived files (an extracted archive, a prepared ``.npz``) are written the same way.
- **Never outside.** Archive members with absolute paths, ``..`` components, links pointing outside the
  destination, or device files are refused before anything is written.
- **Never someone else's folder.** minidl writes into a data folder only what it downloads there (with
  ``download=True``) and what it makes from those downloads. What it derives from files it found (say, the
  decoded copy of a read-only archive) goes to ``<cache>/<name>/derived-<key>``, keyed by the source file's
  path, size and modification time.
- **Clear errors.** A missing data set, a failed download, a corrupt file: each error names the file or
  folder, what is wrong, and what to do.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import lzma
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

__all__ = ["ChecksumError", "CorruptFileError", "DatasetNotFoundError", "DownloadError", "UnsafeArchiveError",
           "atomic_path", "cache_home", "derived_dir", "download_url", "extract_archive", "md5sum",
           "read_tar_members", "resolve_root"]

_CHUNK = 1 << 20
# What a damaged or truncated compressed archive raises while it is read.
_DECODE_ERRORS = (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error)
REDOWNLOAD = "Delete it and run again with download=True, or replace it with a good copy."


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not where they were looked for (and download was not asked for)."""


class CorruptFileError(RuntimeError):
    """A data file exists but is damaged, truncated or not what it should be; it was not used.

    Args:
        path: the file.
        problem: what is wrong with it.
        advice: what to do about it.
    """

    def __init__(self, path, problem: str, advice: str = REDOWNLOAD) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}. The file was not used. {advice}")


class DownloadError(RuntimeError):
    """No URL gave the file; nothing was written."""


class ChecksumError(DownloadError):
    """Every download of the file had the wrong checksum; nothing was written."""


class UnsafeArchiveError(CorruptFileError):
    """An archive member would land outside the destination folder (or is a device file); nothing was
    extracted."""


def cache_home() -> Path:
    """minidl's cache folder: ``$MINIDL_CACHE``, else ``$XDG_CACHE_HOME/minidl``, else ``~/.cache/minidl``."""
    if os.environ.get("MINIDL_CACHE"):
        return Path(os.environ["MINIDL_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "minidl"
    return Path.home() / ".cache" / "minidl"


def resolve_root(root, name: str) -> Path:
    """The folder of data set ``name``: ``root``, else ``$MINIDL_DATA/<name>``, else ``<cache>/<name>``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("MINIDL_DATA"):
        return Path(os.environ["MINIDL_DATA"]).expanduser() / name
    return cache_home() / name


def derived_dir(source: Path, name: str) -> Path:
    """Where files made from ``source`` (a file minidl did not download) are kept: in the cache, under a
    key that changes when the source's path, size or modification time does."""
    st = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_home() / name / f"derived-{key}"


def md5sum(path: Path) -> str:
    """The MD5 of a file, as the lowercase hex string data sets publish."""
    h = hashlib.md5()  # noqa: S324 - the published checksums are MD5; this checks integrity, not secrecy
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(dest: Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success rename it to ``dest``, on any error remove it.

    So ``dest`` is either absent or complete, never half written, whatever happens in between. For a
    folder that another process completed first, that one is kept and this one dropped.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    else:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        tmp = Path(name)

    def remove_tmp():
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)

    try:
        yield tmp
    except BaseException:
        remove_tmp()
        raise
    try:
        # mkstemp/mkdtemp make private (0600/0700) entries; give the result the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)
        os.replace(tmp, dest)
    except OSError:
        remove_tmp()
        if not (is_dir and dest.is_dir()):
            raise


def _check_url(url: str) -> None:
    """HTTPS only; plain HTTP is refused except to this machine (the tests' local server)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        host = parts.hostname or ""
        with contextlib.suppress(ValueError):
            if host == "localhost" or ipaddress.ip_address(host).is_loopback:
                return
    raise DownloadError(f"refusing to download {url}: only https:// URLs are used (plain http only to this "
                        f"machine), so that nobody on the way can swap the file")


class _HTTPSRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL that :func:`_check_url` accepts (no downgrade to plain http)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            _check_url(newurl)
        except DownloadError:
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, dest: Path, md5: str | None, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "minidl"})
    opener = urllib.request.build_opener(_HTTPSRedirects)
    with opener.open(request, timeout=timeout) as response, atomic_path(dest) as tmp:
        expected = response.headers.get("Content-Length")
        h = hashlib.md5()  # noqa: S324 - see md5sum
        size = 0
        with open(tmp, "wb") as f:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                h.update(chunk)
                size += len(chunk)
        if expected is not None and size != int(expected):
            raise DownloadError(f"the connection closed after {size} of {expected} bytes")
        if md5 is not None and h.hexdigest() != md5.lower():
            raise ChecksumError(f"MD5 of the downloaded file is {h.hexdigest()}, the published one is {md5}")


def download_url(urls: Sequence[str], dest: Path, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``dest`` from the first of ``urls`` that gives a file with the right checksum.

    Args:
        urls: mirrors of the same file, tried in order.
        dest: where the file goes (its folder is created if needed).
        md5: the published MD5; ``None`` where none is published (the file is then checked by structure
            when it is read).
        timeout: seconds to wait for the server on each network operation.

    Returns:
        ``dest``.

    Raises:
        ChecksumError: every mirror gave a file with the wrong checksum.
        DownloadError: no mirror gave the file.
        In both cases nothing is left in ``dest``'s folder.
    """
    dest = Path(dest)
    failures = []
    for url in urls:
        try:
            _check_url(url)
            print(f"Downloading {url} to {dest}", file=sys.stderr)
            _fetch(url, dest, md5, timeout)
            return dest
        except (OSError, http.client.HTTPException, DownloadError, ValueError) as e:
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # an HTTP error carries the open response
            # A bare URLError wraps the socket error worth showing; HTTPError's own text has the status.
            failures.append((url, e, e.reason if type(e) is urllib.error.URLError else e))
    listing = "\n".join(f"  {url}: {reason}" for url, _, reason in failures)
    checksum = f" (published MD5 {md5})" if md5 else ""
    message = (f"could not download {dest.name}:\n{listing}\nNothing was written to {dest.parent}. Check the "
               f"network, or download {dest.name}{checksum} by hand into {dest.parent}.")
    if failures and all(isinstance(e, ChecksumError) for _, e, _ in failures):
        raise ChecksumError(message)
    raise DownloadError(message)


_MALICIOUS = "The archive is damaged or malicious: delete it."


def _escapes(path: str) -> bool:
    """Whether a member path (relative to the archive's top) is absolute or climbs out with '..'."""
    p = path.replace("\\", "/")
    if p.startswith("/") or (len(p) > 1 and p[1] == ":"):
        return True
    normalized = os.path.normpath(p)
    return normalized == ".." or normalized.startswith("../")


def _check_member(archive: Path, name: str, link_target: str | None = None, special: bool = False) -> None:
    """Refuse a member that would be written outside the destination folder.

    ``link_target`` is where a link member points, as a path from the archive's top.
    """
    if not name or _escapes(name) or ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise UnsafeArchiveError(archive, f"member {name!r} would be written outside the destination folder "
                                          f"(absolute path or '..'); nothing was extracted", _MALICIOUS)
    if special:
        raise UnsafeArchiveError(archive, f"member {name!r} is a device file or FIFO; nothing was extracted",
                                 _MALICIOUS)
    if link_target is not None and _escapes(link_target):
        raise UnsafeArchiveError(archive, f"link member {name!r} points outside the destination folder "
                                          f"(to {link_target!r}); nothing was extracted", _MALICIOUS)


def _tar_member_check(archive: Path, m: tarfile.TarInfo) -> None:
    if m.issym():
        # A symbolic link's target is relative to the link's own folder, unless absolute.
        target = m.linkname if m.linkname.startswith("/") else str(PurePosixPath(m.name).parent / m.linkname)
        _check_member(archive, m.name, target)
    elif m.islnk():
        # A hard link's target is another member, named from the archive's top.
        _check_member(archive, m.name, m.linkname)
    else:
        _check_member(archive, m.name, special=not (m.isreg() or m.isdir()))


def _zip_member_check(archive: Path, info: zipfile.ZipInfo) -> None:
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(archive, f"member {info.filename!r} is a symbolic link, which minidl does not "
                                          f"extract from zip files; nothing was extracted", _MALICIOUS)
    _check_member(archive, info.filename)


def _open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except _DECODE_ERRORS as e:
        raise CorruptFileError(archive, f"not a readable tar or zip archive ({e})") from e


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract a zip or tar archive (any compression) into ``dest``, refusing unsafe members.

    Every member is checked before anything is written. Extract into a fresh folder and remove it if this
    raises: a truncated archive may fail half way.

    Raises:
        UnsafeArchiveError: a member would land outside ``dest`` (absolute path, ``..``, a link pointing out)
            or is a device file.
        CorruptFileError: the archive is not a readable zip or tar, or it is truncated.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _zip_member_check(archive, info)
                for info in infos:
                    zf.extract(info, dest)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise CorruptFileError(archive, f"the zip archive is damaged ({e})") from e
        return
    with _open_tar(archive) as tf:
        try:
            members = tf.getmembers()
            for m in members:
                _tar_member_check(archive, m)
            tf.extractall(dest, members=members, filter="data")
        except _DECODE_ERRORS as e:
            raise CorruptFileError(archive, f"the tar archive is damaged or truncated ({e})") from e


def read_tar_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """Read the regular-file members named in ``wanted`` from a tar archive (any compression), in one pass.

    Nothing is written to disk, and every member is checked as :func:`extract_archive` would, so an archive
    with unsafe members is refused as a whole.

    Returns:
        ``{member name: contents}`` for the wanted members found.
    """
    found = {}
    with _open_tar(Path(archive)) as tf:
        try:
            for m in tf:
                _tar_member_check(archive, m)
                if m.name in wanted and m.isreg():
                    found[m.name] = tf.extractfile(m).read()
        except _DECODE_ERRORS as e:
            raise CorruptFileError(archive, f"the tar archive is damaged or truncated ({e})") from e
    return found
