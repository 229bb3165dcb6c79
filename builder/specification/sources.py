"""Reading the files of a spec: regular files only, of bounded size, text as strict UTF-8.

A spec arrives in a pull request, so a path may name a FIFO (reading it
hangs), `/dev/zero` (reading it never ends), a huge file, or text in another
encoding. Each of those is a located `SpecError` here, before any parser
sees the bytes.
"""
from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

from builder.errors import Location, Problem, SpecError

#: stacks.yaml, fragment.yaml and templates
MAX_TEXT_BYTES = 2 * 1024 * 1024
#: files a fragment copies into the build context
MAX_FILE_BYTES = 64 * 1024 * 1024
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)


def read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; a SpecError otherwise."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise SpecError([Problem(f"cannot read file: {exc.strerror}", Location(path))]) from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError([Problem(f"not a regular file ({_kind(info.st_mode)})", Location(path),
                                 "specs, fragments and their files must be regular files")])
    if info.st_size > limit:
        raise SpecError([_too_big(path, limit)])
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SpecError([Problem(f"cannot read file: {exc.strerror}", Location(path))]) from None
    if len(data) > limit:  # it grew after the stat
        raise SpecError([_too_big(path, limit)])
    return data


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """A text file as UTF-8 (a UTF-8 byte-order mark is dropped)."""
    return decode(read_bytes(path, limit), path)


def decode(data: bytes, path: Path) -> str:
    """Strict UTF-8, with the line and column of the first byte that is not."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            raise SpecError([Problem(f"file is {name} encoded; stacks reads UTF-8", Location(path, 1, 1),
                                     "save it as UTF-8")])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError([Problem(f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})", Location(path, line, column),
                                 "save it as UTF-8")]) from None


def _too_big(path: Path, limit: int) -> Problem:
    """No line is named: the file is refused before any of it is parsed, so no line is known to be at fault."""
    return Problem(f"file is larger than {limit // 1024 // 1024} MiB, the limit for this kind of file; "
                   "it is refused unread, so no line can be named", Location(path),
                   "a spec, fragment.yaml or template is text of a few KiB; files a fragment copies may be up to "
                   f"{MAX_FILE_BYTES // 1024 // 1024} MiB")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
