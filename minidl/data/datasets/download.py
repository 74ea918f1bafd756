"""Where data sets live, and how they get there safely: download, checksum, extraction, cache.

Rules every dataset here follows:

- **Where.** The ``root`` argument, else ``$MINIDL_DATA/<name>``, else ``<cache>/<name>`` where ``<cache>`` is
  ``$MINIDL_CACHE``, else ``$XDG_CACHE_HOME/minidl``, else ``~/.cache/minidl``. A folder that holds the
  official files is read as is, offline.
- **Never a half file.** A download streams into a temporary file in the destination folder, its MD5 is
  checked against the published one, and only then is it renamed to its real name (a rename within one
  folder is atomic). Derived files (an extracted archive, a prepared ``.npz``) are written the same way.
- **Never outside.** Only regular files and folders are extracted. An archive with a link (symbolic or
  hard, wherever it points), a device file, a FIFO, or a member name that is absolute, climbs out with
  ``..``, appears twice or is absurdly long is refused before anything is written; so is one whose member
  would resolve, through links already on disk, to a path outside the destination. minidl writes each
  file itself, never through a link, rather than trust ``tarfile``'s filters.
- **Never someone else's folder.** minidl writes into a data folder only what it downloads there (with
  ``download=True``) and what it makes from those downloads. What it derives from files it found (say, the
  decoded copy of a read-only archive) goes to ``<cache>/<name>/derived-<key>``, keyed by the source file's
  path, size and modification time.
- **Clear errors.** A missing data set, a failed download, a corrupt file: each error names the file or
  folder, what is wrong, and what to do.
"""
from __future__ import annotations

import contextlib
import functools
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

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
    """An archive has a member that is not a plain file or folder (a link, a device file, a FIFO) or that
    could land outside the destination folder; nothing was extracted. Damage does not cause it: an archive
    with such a member was made that way, so it is reported as unsafe, not as corrupt."""


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


_UNSAFE = "The archive is unsafe (possibly malicious): delete it and get the data set from its official source."
# Linux's PATH_MAX and NAME_MAX, the limits of nearly every file system: no real data set has a longer name, and
# an archive that does is probing how extraction handles paths the OS cannot resolve (as CVE-2025-4517 does).
_MAX_PATH_BYTES = 4096
_MAX_NAME_BYTES = 255
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
# Where names can be opened relative to an open folder (POSIX), members are written by walking down from the
# destination one folder at a time without following links; elsewhere (Windows) by path.
_WALK_BY_FD = {os.open, os.mkdir} <= os.supports_dir_fd
_ZIP_READ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error)


def _show(name: str) -> str:
    """A member name for a message: whole, unless absurdly long."""
    text = repr(name)
    return text if len(text) <= 100 else f"{text[:80]}...' ({len(name)} characters)"


def _unsafe(archive: Path, name: str, problem: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(archive, f"member {_show(name)} {problem}; nothing was extracted", _UNSAFE)


def _is_absolute(path: str) -> bool:
    """Whether a member path is absolute: from the root (``/``, ``\\``) or from a Windows drive (``C:/``,
    ``C:\\``). Any other ``:`` is part of a name, legal on POSIX."""
    p = path.replace("\\", "/")
    return p.startswith("/") or (len(p) > 2 and p[0].isascii() and p[0].isalpha() and p[1:3] == ":/")


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    """The folder and file names of a member's path below the destination (``()`` for the destination itself).

    Refuses, by its text alone, a name that holds a NUL byte, is absurdly long, absolute, or climbs out with
    ``..``. Backslashes count as separators, as they do on Windows.
    """
    if "\x00" in name:  # no file system allows it; the OS calls would raise ValueError, not refuse cleanly
        raise _unsafe(archive, name, "has a NUL byte in its name, which no file system allows")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > _MAX_PATH_BYTES:
        raise _unsafe(archive, name, f"has a name of {size} bytes, and file systems allow at most "
                                     f"{_MAX_PATH_BYTES} for a whole path")
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    longest = max((len(p.encode("utf-8", "surrogatepass")) for p in parts), default=0)
    if longest > _MAX_NAME_BYTES:
        raise _unsafe(archive, name, f"has a {longest}-byte component, and file systems allow names of at most "
                                     f"{_MAX_NAME_BYTES} bytes")
    if not name or _is_absolute(name) or ".." in parts:
        raise _unsafe(archive, name, "would be written outside the destination folder (absolute path or '..')")
    return parts


_ONLY_FILES = "minidl extracts only regular files and folders"


def _tar_is_dir(archive: Path, m: tarfile.TarInfo) -> bool:
    """Whether a tar member is a folder (True) or a regular file (False); any other kind is refused."""
    if m.isdir() or m.isreg():
        return m.isdir()
    if m.issym():
        raise _unsafe(archive, m.name, f"is a symbolic link: {_ONLY_FILES}, since a link can carry later members "
                                       f"outside the destination folder, whatever its target looks like")
    if m.islnk():
        raise _unsafe(archive, m.name, f"is a hard link: {_ONLY_FILES}, since a link can make a later member "
                                       f"overwrite a file outside the destination folder")
    raise _unsafe(archive, m.name, f"is a device file, FIFO or other special file: {_ONLY_FILES}")


def _zip_is_dir(archive: Path, info: zipfile.ZipInfo) -> bool:
    """Whether a zip member is a folder (True) or a regular file (False); links and special files are refused.

    Zip files keep the Unix file type, where there is one, in the top 16 bits of ``external_attr``; 0 means
    the archiver recorded none (a regular file or, with a trailing '/', a folder).
    """
    kind = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir() or kind == stat.S_IFDIR:
        return True
    if kind in (0, stat.S_IFREG):
        return False
    if kind == stat.S_IFLNK:
        raise _unsafe(archive, info.filename, f"is a symbolic link: {_ONLY_FILES}, since a link can carry later "
                                              f"members outside the destination folder")
    raise _unsafe(archive, info.filename, f"is a device file, FIFO or other special file: {_ONLY_FILES}")


_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                zipfile.ZIP_LZMA: "lzma"}


def _check_zip_readable(archive: Path, infos: Sequence[zipfile.ZipInfo]) -> None:
    """Refuse an encrypted member, or one compressed by a method ``zipfile`` cannot decode (Deflate64, ...):
    reading it would fail only once the members before it were written."""
    for info in infos:
        if info.flag_bits & 0x1:
            raise CorruptFileError(archive, f"member {_show(info.filename)} is encrypted, and minidl reads only "
                                            f"unencrypted archives; nothing was extracted")
        if info.compress_type not in _ZIP_METHODS:
            raise CorruptFileError(archive, f"member {_show(info.filename)} uses the unsupported compression "
                                            f"method {info.compress_type} (supported: "
                                            f"{', '.join(f'{k} ({v})' for k, v in _ZIP_METHODS.items())}); "
                                            f"nothing was extracted")


# A checked member: its name in the archive, its path below the destination, whether it is a folder, and a
# function that opens its contents for reading.
_Member = tuple[str, tuple[str, ...], bool, Callable[[], IO[bytes]]]


def _check_layout(archive: Path, members: Sequence[_Member]) -> None:
    """Refuse a path that two members share (the later would silently replace the earlier), and a file that a
    later member needs as a folder."""
    kinds = {}
    for name, parts, is_dir, _ in members:
        if parts in kinds and parts:  # () is the destination itself: './' may appear more than once
            raise _unsafe(archive, name, f"appears twice (first as {_show(kinds[parts][0])}), so one copy would "
                                         f"silently replace the other")
        kinds[parts] = (name, is_dir)
    for name, parts, _, _ in members:
        for k in range(1, len(parts)):
            above, above_is_dir = kinds.get(parts[:k], (None, True))
            if not above_is_dir:
                raise _unsafe(archive, above, f"is a file, but {_show(name)} needs a folder there")


def _check_resolved(archive: Path, dest: Path, members: Sequence[_Member]) -> None:
    """Refuse a member whose path, with every link already on disk followed, is not inside ``dest``.

    The archive cannot make links (they are refused), so this guards against links that were in ``dest``
    before; the writer below does not follow links either, so this is a second, independent line.
    """
    top = os.path.realpath(dest)
    for name, parts, _, _ in members:
        target = os.path.realpath(os.path.join(top, *parts))
        if os.path.commonpath([top, target]) != top:
            raise _unsafe(archive, name, f"resolves to {target}, outside {dest}")


def _open_folder(top_fd: int, parts: Sequence[str]) -> int:
    """Open the folder ``parts`` below the open folder ``top_fd``, making what is missing, one level at a
    time and never through a link (``O_NOFOLLOW``): even a link swapped in after the checks cannot lead out."""
    fd = os.dup(top_fd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, dir_fd=fd)
            inner = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_file(dest: Path, top_fd: int | None, parts: Sequence[str]) -> int:
    """Create the new file ``dest/parts`` (and the folders above it) and return it open for writing.

    ``O_EXCL`` refuses a file or link already there, ``O_NOFOLLOW`` a link. Mode 0o666 less the umask: the
    member's own mode, owner and setuid/setgid bits are ignored, since a data file is never a program.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
    if top_fd is None:
        folder = dest.joinpath(*parts[:-1])
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder / parts[-1], flags, 0o666)
    folder_fd = _open_folder(top_fd, parts[:-1])
    try:
        return os.open(parts[-1], flags, 0o666, dir_fd=folder_fd)
    finally:
        os.close(folder_fd)


def _chunks(archive: Path, member: _Member, read_errors: tuple, damaged: str) -> Iterator[bytes]:
    """The contents of ``member``, chunk by chunk; a read that fails means the archive is damaged."""
    try:
        with member[3]() as source:
            while chunk := source.read(_CHUNK):
                yield chunk
    except read_errors as e:
        raise CorruptFileError(archive, f"{damaged} ({e})") from e


def _write_members(archive: Path, dest: Path, members: Sequence[_Member], read_errors: tuple,
                   damaged: str) -> None:
    """Write the folders and regular files of checked ``members`` under ``dest``, never following a link."""
    top_fd = os.open(dest, os.O_RDONLY | _O_DIRECTORY) if _WALK_BY_FD else None
    try:
        for member in members:
            parts, is_dir = member[1], member[2]
            if not parts:
                continue
            if is_dir:
                if top_fd is None:
                    dest.joinpath(*parts).mkdir(parents=True, exist_ok=True)
                else:
                    os.close(_open_folder(top_fd, parts))
                continue
            with open(_create_file(dest, top_fd, parts), "wb") as out:
                for chunk in _chunks(archive, member, read_errors, damaged):
                    out.write(chunk)
    finally:
        if top_fd is not None:
            os.close(top_fd)


def _open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except _DECODE_ERRORS as e:
        raise CorruptFileError(archive, f"not a readable tar or zip archive ({e})") from e


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract a zip or tar archive (any compression) into ``dest``, refusing unsafe members.

    Only regular files and folders are extracted: a symbolic or hard link, a device file or a FIFO makes the
    whole archive refused. Links are refused even when they point inside, because a chain of them can lead
    out in ways a check of their text cannot see (CVE-2025-4517 defeats ``tarfile``'s own ``filter="data"``
    on unpatched Pythons), and a data set needs none. Every member is checked before anything is written:
    its name (not absolute, no ``..``, not absurdly long, not twice), its kind, and where its path resolves
    to on disk. Then each file is written by minidl itself, not by ``tarfile`` or ``zipfile``: created new,
    never through a link, with plain permissions.

    Args:
        archive: a zip or tar file (``.tar``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``, whatever its name).
        dest: the folder to extract into (made if needed). Use a fresh one, and remove it if this raises: a
            truncated archive may fail half way. A file already there is not overwritten (``FileExistsError``).

    Raises:
        UnsafeArchiveError: a member is a link, a device file or a FIFO, has an absolute, ``..``, duplicate or
            absurdly long name, or would resolve to a path outside ``dest``. Nothing was written.
        CorruptFileError: the archive is not a readable zip or tar, it is truncated, or a zip member is
            encrypted or compressed by a method ``zipfile`` cannot decode (nothing was written then).
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        damaged = "the zip archive is damaged"
        try:
            zf = zipfile.ZipFile(archive)
        except _ZIP_READ_ERRORS as e:
            raise CorruptFileError(archive, f"{damaged} ({e})") from e
        with zf:
            members = [(info.filename, _member_parts(archive, info.filename), _zip_is_dir(archive, info),
                        functools.partial(zf.open, info)) for info in zf.infolist()]
            _check_layout(archive, members)
            _check_resolved(archive, dest, members)
            _check_zip_readable(archive, zf.infolist())
            _write_members(archive, dest, members, _ZIP_READ_ERRORS, damaged)
        return
    damaged = "the tar archive is damaged or truncated"
    with _open_tar(archive) as tf:
        try:
            infos = tf.getmembers()
        except _DECODE_ERRORS as e:
            raise CorruptFileError(archive, f"{damaged} ({e})") from e
        members = [(m.name, _member_parts(archive, m.name), _tar_is_dir(archive, m),
                    functools.partial(tf.extractfile, m)) for m in infos]
        _check_layout(archive, members)
        _check_resolved(archive, dest, members)
        _write_members(archive, dest, members, _DECODE_ERRORS, damaged)


def read_tar_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """Read the regular-file members named in ``wanted`` from a tar archive (any compression), in one pass.

    Nothing is written to disk, and every member is checked as :func:`extract_archive` checks it (links,
    special files, unsafe or duplicate names), so an archive with unsafe members is refused as a whole.

    Returns:
        ``{member name: contents}`` for the wanted members found.

    Raises:
        UnsafeArchiveError: a member that :func:`extract_archive` would refuse.
        CorruptFileError: the archive is not a readable tar, or it is truncated.
    """
    archive = Path(archive)
    found, members = {}, []
    with _open_tar(archive) as tf:
        try:
            for m in tf:
                members.append((m.name, _member_parts(archive, m.name), _tar_is_dir(archive, m), None))
                if m.name in wanted and m.isreg():
                    found[m.name] = tf.extractfile(m).read()
        except _DECODE_ERRORS as e:
            raise CorruptFileError(archive, f"the tar archive is damaged or truncated ({e})") from e
    _check_layout(archive, members)
    return found
