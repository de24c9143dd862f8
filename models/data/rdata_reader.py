"""A small reader for R's lazy-load databases (``Rdata.rdb`` + ``Rdata.rdx``), enough for character data.

Debian's ``r-cran-janeaustenr`` ships Jane Austen's novels only inside R's lazy-load database, and no R
is installed here. The index (``.rdx``) is a gzip- or zlib-compressed R serialization of a list whose
``variables`` element maps each object name to (offset, length) in the ``.rdb`` file; each object there is
a 4-byte big-endian uncompressed length followed by a zlib stream holding one R serialization (XDR format).

``read_lazyload_db(rdb, rdx)`` returns ``{name: python_value}`` with character vectors as lists of str
(``None`` for NA), integer / double / logical vectors as lists, and lists as dicts when named.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

# SEXP types used by data objects (R Internals, "Serialization Formats").
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP, VECSXP = 9, 10, 13, 14, 15, 16, 19
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP = 255, 254, 253, 242, 241
MISSINGARG_SXP, BASENAMESPACE_SXP = 251, 247
NA_INTEGER = -(2**31)


class RDataError(ValueError):
    """The bytes are not an R serialization this reader understands."""


class _Reader:
    def __init__(self, data: bytes):
        if data[:2] != b"X\n":
            raise RDataError("not an XDR R serialization (expected header 'X\\n')")
        self.data = data
        self.pos = 2
        self.refs: list = []
        version = self.int()
        self.int()  # R version that wrote it
        self.int()  # minimal R version to read it
        if version == 3:
            encoding_length = self.int()  # then the native encoding's name, which we skip
            self.pos += encoding_length
        elif version != 2:
            raise RDataError(f"unsupported R serialization version {version}")

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def charsxp(self):
        n = self.int()
        if n == -1:
            return None
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def item(self):
        flags = self.int()
        kind = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if kind in (NILVALUE_SXP, GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP, MISSINGARG_SXP, BASENAMESPACE_SXP):
            return None
        if kind == REFSXP:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == SYMSXP:
            name = self.item()  # a CHARSXP
            self.refs.append(name)
            return name
        if kind == CHARSXP:
            self.pos -= 4
            return self._charsxp_after_flags()
        if kind in (LISTSXP, LANGSXP):
            items, names = [], []
            while kind in (LISTSXP, LANGSXP):
                attrs = self.item() if has_attr else None
                del attrs
                tag = self.item() if has_tag else None
                items.append(self.item())
                names.append(tag)
                flags = self.int()
                kind = flags & 0xFF
                has_attr = bool(flags & (1 << 9))
                has_tag = bool(flags & (1 << 10))
            if kind != NILVALUE_SXP:
                raise RDataError(f"unexpected pairlist terminator type {kind}")
            if any(n is not None for n in names):
                return dict(zip(names, items))
            return items
        if kind == STRSXP:
            value = [self.item() for _ in range(self.length())]
        elif kind == VECSXP:
            value = [self.item() for _ in range(self.length())]
        elif kind in (INTSXP, LGLSXP):
            n = self.length()
            ints = struct.unpack_from(f">{n}i", self.data, self.pos)
            self.pos += 4 * n
            value = [None if v == NA_INTEGER else (bool(v) if kind == LGLSXP else v) for v in ints]
        elif kind == REALSXP:
            n = self.length()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        else:
            raise RDataError(f"R object type {kind} is not supported by this reader")
        if has_attr:
            attrs = self.item()
            names = attrs.get("names") if isinstance(attrs, dict) else None
            if kind == VECSXP and names and len(names) == len(value):
                value = dict(zip(names, value))
        return value

    def _charsxp_after_flags(self):
        self.int()  # flags (encoding bits)
        return self.charsxp()


def parse_serialization(data: bytes):
    """Parse one XDR R serialization (after decompression) into Python values."""
    return _Reader(data).item()


def _decompress_index(raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    return zlib.decompress(raw[4:])


def read_lazyload_db(rdb: str | Path, rdx: str | Path) -> dict:
    """Every object of an R lazy-load database, by name."""
    index = parse_serialization(_decompress_index(Path(rdx).read_bytes()))
    if not isinstance(index, dict) or "variables" not in index:
        raise RDataError(f"{rdx} is not a lazy-load index (no 'variables')")
    blob = Path(rdb).read_bytes()
    objects = {}
    for name, (offset, length) in index["variables"].items():
        chunk = blob[int(offset) : int(offset) + int(length)]
        objects[name] = parse_serialization(zlib.decompress(chunk[4:]))
    return objects
