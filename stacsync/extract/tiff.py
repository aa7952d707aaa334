"""A header-only TIFF IFD reader, and the COG rules (rio-cogeo's strict mode) applied to it.

It finds where a file's IFDs, offset arrays and blocks end (truncation) and how they are laid out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["Ifd", "TiffLayout", "cog_status", "read_tiff_layout"]

# --- TIFF layout: a small, header-only IFD reader for the truncation and COG checks ----------

_TAG_SUBFILE_TYPE, _TAG_WIDTH, _TAG_HEIGHT = 254, 256, 257
_TAG_STRIP_OFFSETS, _TAG_SAMPLES, _TAG_ROWS_PER_STRIP, _TAG_STRIP_COUNTS = 273, 277, 278, 279
_TAG_PLANAR = 284
_TAG_TILE_WIDTH, _TAG_TILE_LENGTH, _TAG_TILE_OFFSETS, _TAG_TILE_COUNTS = 322, 323, 324, 325
_TAG_SUB_IFDS = 330
_REDUCED_IMAGE, _MASK = 1, 4  # NewSubfileType bits
_PLANAR_SEPARATE = 2
_INT_TYPES = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}  # SHORT, LONG, IFD, LONG8, IFD8
# Bytes per value of every TIFF field type, to know where out-of-line tag values end.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TYPE_SIZES |= {16: 8, 17: 8, 18: 8}
# Offset arrays up to this many entries are read whole (<= 64 KiB); longer ones (huge
# files: one request per 8 KiB entries on a FUSE mount adds up) only by their last entry, which
# in every writer we know of is the block that ends furthest into the file.
_FULL_ARRAY_MAX = 8192
# The search for an image's first stored block reads growing slices of its offset arrays and gives
# up after this many empty blocks (a sparse image that empty is reported as having no data).
_FIRST_BLOCK_SLICE, _FIRST_BLOCK_MAX = 256, 65536
_HEAD_BYTES = 65536  # COG headers (all IFDs and offset arrays) fit in one read of this size
_MAX_IFDS = 512
_MAX_OVERVIEWS = 30  # GDAL stops there (a guard against hostile files)
# GDAL >= 3.1 writes "ghost" structural metadata right after the TIFF header.
_GHOST_KEY = b"GDAL_STRUCTURAL_METADATA_SIZE="
_GHOST_EDITED = b"KNOWN_INCOMPATIBLE_EDITION=YES"


_Entry = tuple[int, int, bytes]  # TIFF field type, value count, raw value/offset field


@dataclass(frozen=True, slots=True)
class Ifd:
    """The facts of one IFD (image) that the COG rules look at."""

    offset: int
    subfile_type: int
    width: int
    height: int
    samples: int
    block_width: int  # TileWidth, or the image width for strips
    first_block: int  # offset of band 1's first stored block; 0 when none is stored


@dataclass(frozen=True, slots=True)
class TiffLayout:
    tiled: bool
    declared_end: int  # furthest byte the header says the file holds (IFDs, arrays, blocks)
    images: tuple[Ifd, ...] = ()  # in GDAL's order: first IFD, its SubIFDs, the rest of the chain
    edited: bool = False  # GDAL's ghost header says later edits broke the layout optimisations

    def overviews(self) -> tuple[Ifd, ...]:
        """The IFDs GDAL takes as internal overviews of the first image, in GDAL's order."""
        main = self.images[0]
        found = [
            ifd
            for ifd in self.images[1:]
            if ifd.subfile_type & _REDUCED_IMAGE
            and not ifd.subfile_type & _MASK
            and ifd.samples == main.samples  # GDAL keeps overviews with the main band count
            and ifd.width > 0  # and those it can open
        ]
        return tuple(found[:_MAX_OVERVIEWS])


class _BeyondEnd(Exception):
    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


def read_tiff_layout(fh: IO[bytes], size: int) -> TiffLayout | None:
    """Walk the IFDs; None when the file is not a TIFF. Raises ValueError if malformed."""
    reader = _Reader(fh, size)
    fmt = reader.header()
    if fmt is None:
        return None
    images: list[Ifd] = []
    end = 0
    try:
        for offset, ifd_end, tags in reader.walk(fmt):
            end = max(end, ifd_end, reader.data_end(fmt, tags))
            images.append(reader.image(fmt, offset, tags))
    except _BeyondEnd as beyond:
        return TiffLayout(tiled=False, declared_end=beyond.end)
    return TiffLayout(
        tiled=_TAG_TILE_WIDTH in reader.first_tags,
        declared_end=end,
        images=tuple(images),
        edited=reader.edited(fmt),
    )


@dataclass(frozen=True, slots=True)
class _Format:
    order: str  # struct byte order
    count: str  # struct code of an IFD's entry count
    offset: str  # struct code of an offset / inline value field
    entry: int  # bytes per IFD entry
    first: int  # offset of the first IFD
    ghost: int  # where GDAL's ghost header would start (right after the TIFF header)


class _Reader:
    """Reads only the bytes the header points at, from one cached head block when possible."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh, self.size = fh, size
        self.head = fh.read(min(size, _HEAD_BYTES))
        self.first_tags: dict[int, _Entry] = {}

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset in TIFF header")
        if offset + length > self.size:
            raise _BeyondEnd(offset + length)
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        self.fh.seek(offset)
        data = self.fh.read(length)
        if len(data) < length:  # the file shrank while we read it
            raise _BeyondEnd(offset + length)
        return data

    def header(self) -> _Format | None:
        head = self.head[:16]
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 8:
            return None
        magic = struct.unpack(order + "H", head[2:4])[0]
        if magic == 42:
            first = struct.unpack(order + "I", head[4:8])[0]
            return _Format(order, "H", "I", 12, first, 8)
        if magic == 43 and len(head) >= 16:
            first = struct.unpack(order + "Q", head[8:16])[0]
            return _Format(order, "Q", "Q", 20, first, 16)
        return None

    def edited(self, fmt: _Format) -> bool:
        start = fmt.ghost
        if not self.head.startswith(_GHOST_KEY, start):
            return False
        digits = self.head[start + len(_GHOST_KEY) : start + len(_GHOST_KEY) + 6]
        length = len(_GHOST_KEY) + len(b"000000 bytes\n") + (int(digits) if digits.isdigit() else 0)
        return _GHOST_EDITED in self.head[start : start + length]

    def walk(self, fmt: _Format) -> Iterator[tuple[int, int, dict[int, _Entry]]]:
        """(offset, end, tags) of each IFD in GDAL's order: the first, its SubIFDs, the rest."""
        offset, seen = fmt.first, set()
        while offset and len(seen) < _MAX_IFDS:
            if offset in seen:
                raise ValueError("IFD chain loops")
            seen.add(offset)
            ifd_end, tags, following = self.ifd(fmt, offset)
            yield offset, ifd_end, tags
            if len(seen) == 1:
                self.first_tags = tags
                for sub in self._sub_ifds(fmt, tags):
                    sub_end, sub_tags, _ = self.ifd(fmt, sub)
                    yield sub, sub_end, sub_tags
            offset = following

    def _sub_ifds(self, fmt: _Format, tags: dict[int, _Entry]) -> list[int]:
        entry = tags.get(_TAG_SUB_IFDS)
        if entry is None:
            return []
        if entry[1] > _MAX_IFDS:
            raise ValueError(f"implausible SubIFD count {entry[1]}")
        return self._slice(fmt, entry, 0, entry[1])

    def ifd(self, fmt: _Format, offset: int) -> tuple[int, dict[int, _Entry], int]:
        """(where the IFD and its out-of-line values end, its tags, the next IFD's offset)."""
        count_size, value_size = struct.calcsize(fmt.count), struct.calcsize(fmt.offset)
        n = struct.unpack(fmt.order + fmt.count, self.read(offset, count_size))[0]
        if n == 0 or n > 4096:
            raise ValueError(f"implausible IFD entry count {n}")
        body = self.read(offset + count_size, n * fmt.entry + value_size)
        tags, values_end = self._entries(fmt, body, n)
        following = struct.unpack(fmt.order + fmt.offset, body[n * fmt.entry :])[0]
        return max(offset + count_size + len(body), values_end), tags, following

    @staticmethod
    def _entries(fmt: _Format, body: bytes, n: int) -> tuple[dict[int, _Entry], int]:
        """Tags of one IFD, and where the furthest out-of-line tag value ends."""
        tags: dict[int, _Entry] = {}
        head = fmt.order + "HH" + fmt.offset  # tag, type, value count (LONG or LONG8)
        head_size = struct.calcsize(head)
        values_end = 0
        for i in range(n):
            raw = body[i * fmt.entry : (i + 1) * fmt.entry]
            tag, typ, count = struct.unpack(head, raw[:head_size])
            field = raw[head_size:]
            tags[tag] = (typ, count, field)
            length = count * _TYPE_SIZES.get(typ, 1)
            if length > len(field):  # the value lives elsewhere; the field holds its offset
                start = struct.unpack(fmt.order + fmt.offset, field)[0]
                values_end = max(values_end, start + length)
        return tags, values_end

    def image(self, fmt: _Format, offset: int, tags: dict[int, _Entry]) -> Ifd:
        width = self._scalar(fmt, tags, _TAG_WIDTH, 0)
        height = self._scalar(fmt, tags, _TAG_HEIGHT, 0)
        if _TAG_TILE_WIDTH in tags:
            block_width = self._scalar(fmt, tags, _TAG_TILE_WIDTH, 0)
            block_height = self._scalar(fmt, tags, _TAG_TILE_LENGTH, 0)
        else:
            block_width = width
            block_height = min(self._scalar(fmt, tags, _TAG_ROWS_PER_STRIP, height), height)
        band_blocks = _FIRST_BLOCK_MAX
        separate = self._scalar(fmt, tags, _TAG_PLANAR, 1) == _PLANAR_SEPARATE
        if separate and block_width and block_height:
            # Band 1's blocks come first; the search must not run into band 2's.
            band_blocks = -(-width // block_width) * -(-height // block_height)
        return Ifd(
            offset=offset,
            subfile_type=self._scalar(fmt, tags, _TAG_SUBFILE_TYPE, 0),
            width=width,
            height=height,
            samples=self._scalar(fmt, tags, _TAG_SAMPLES, 1),
            block_width=block_width,
            first_block=self._first_block(fmt, tags, band_blocks),
        )

    @staticmethod
    def _scalar(fmt: _Format, tags: dict[int, _Entry], tag: int, default: int) -> int:
        entry = tags.get(tag)
        if entry is None:
            return default
        typ, count, field = entry
        code = _INT_TYPES.get(typ)
        if code is None or count == 0:
            raise ValueError(f"unexpected TIFF type {typ} for tag {tag}")
        return struct.unpack_from(fmt.order + code, field)[0]

    @staticmethod
    def _block_tags(tags: dict[int, _Entry]) -> tuple[_Entry, _Entry] | None:
        for off_tag, cnt_tag in (
            (_TAG_TILE_OFFSETS, _TAG_TILE_COUNTS),
            (_TAG_STRIP_OFFSETS, _TAG_STRIP_COUNTS),
        ):
            if off_tag in tags and cnt_tag in tags:
                return tags[off_tag], tags[cnt_tag]
        return None

    def data_end(self, fmt: _Format, tags: dict[int, _Entry]) -> int:
        pair = self._block_tags(tags)
        if pair is None:
            return 0
        offsets, counts = (self._array(fmt, entry) for entry in pair)
        return max((o + c for o, c in zip(offsets, counts, strict=False) if o), default=0)

    def _first_block(self, fmt: _Format, tags: dict[int, _Entry], band_blocks: int) -> int:
        """Offset of the first block with data (offset and byte count both non-zero), or 0."""
        pair = self._block_tags(tags)
        if pair is None:
            return 0
        total = min(pair[0][1], pair[1][1], band_blocks, _FIRST_BLOCK_MAX)
        start, step = 0, _FIRST_BLOCK_SLICE
        while start < total:  # almost always decided by the first entry
            n = min(step, total - start)
            offsets, counts = (self._slice(fmt, entry, start, n) for entry in pair)
            found = next((o for o, c in zip(offsets, counts, strict=True) if o and c), 0)
            if found:
                return found
            start, step = start + n, min(step * 4, _FULL_ARRAY_MAX)
        return 0

    def _array(self, fmt: _Format, entry: _Entry) -> list[int]:
        count = entry[1]
        if count <= _FULL_ARRAY_MAX:
            return self._slice(fmt, entry, 0, count)
        return self._slice(fmt, entry, count - 1, 1)

    def _slice(self, fmt: _Format, entry: _Entry, start: int, n: int) -> list[int]:
        """Values start..start+n of an integer array tag, inline or out-of-line."""
        typ, count, field = entry
        code = _INT_TYPES.get(typ)
        if code is None or count == 0:
            raise ValueError(f"unexpected TIFF type {typ} for a block offset/byte count")
        item = struct.calcsize(code)
        if count * item <= len(field):
            values = struct.unpack(f"{fmt.order}{count}{code}", field[: count * item])
            return list(values[start : start + n])
        first = struct.unpack(fmt.order + fmt.offset, field)[0]
        if first + count * item > self.size:
            raise _BeyondEnd(first + count * item)
        raw = self.read(first + start * item, n * item)
        return list(struct.unpack(f"{fmt.order}{n}{code}", raw))


# --- COG rules: rio-cogeo's cog_validate (strict), its messages and their order ----------------


def cog_status(src: Any, layout: TiffLayout | None) -> tuple[bool, tuple[str, ...]]:
    """The COG verdict of rio-cogeo's strict mode, from the open dataset and the IFDs we parsed.

    rio-cogeo (like GDAL's validate_cloud_optimized_geotiff.py) accepts an untiled file of at most
    512x512: a client fetches it in one or two range requests, so we accept it too. It only warns
    about a bigger file without overviews; we refuse those: a STAC browser showing a large
    orthomosaic zoomed out would have to fetch every full-resolution tile. Nothing is reopened:
    rio-cogeo opened every file once more, and once more per overview level.
    """
    problems: list[str] = []
    if any(f.lower().endswith(".ovr") for f in src.files[1:]):
        problems.append("Overviews found in external .ovr file. They should be internal")
    if layout is None or not layout.images:
        problems.append("COG layout not checked (the TIFF structure could not be read)")
    else:
        problems.extend(_cog_layout_problems(src, layout))
    return not problems, tuple(problems)


_COG_UNTILED_MAX = 512  # pixels per side below which tiles and overviews are not needed
_COG_MAX_FIRST_IFD = 300  # GDAL >= 3.1 writes ~140 bytes of "ghost" structural metadata first


def _cog_layout_problems(src: Any, layout: TiffLayout) -> list[str]:
    main, overviews = layout.images[0], layout.overviews()
    # As rasterio's overviews() computes them: from the widths alone. Only internal overviews
    # count (rio-cogeo opened the file without looking for a .ovr, reported above).
    factors = [round(src.width / ovr.width) for ovr in overviews]
    errors: list[str] = []
    advice: list[str] = []  # rio-cogeo's warnings: problems in strict mode, listed last
    if src.width > _COG_UNTILED_MAX or src.height > _COG_UNTILED_MAX:
        if src.block_shapes[0][1] == src.width:
            errors.append("The file is greater than 512xH or 512xW, but is not tiled")
        if not factors:
            advice.append(
                "The file is greater than 512xH or 512xW, it is recommended to include internal "
                "overviews"
            )
    if main.offset > _COG_MAX_FIRST_IFD:
        errors.append(f"The offset of the main IFD should be < 300. It is {main.offset} instead")
    if layout.edited:
        errors.append(
            "This file used to have optimizations in its layout, but those have been, at least "
            "partly, invalidated by later changes"
        )
    errors.extend(_overview_ifd_problems(main, overviews, factors))
    errors.extend(_first_block_problems(main, overviews))
    errors.extend(
        f"Overview of index {ix} is not tiled"
        for ix, ovr in enumerate(overviews)
        if max(ovr.width, ovr.height) > _COG_UNTILED_MAX and ovr.block_width == ovr.width
    )
    return errors + advice


def _overview_ifd_problems(main: Ifd, overviews: tuple[Ifd, ...], factors: list[int]) -> list[str]:
    """Overviews from largest to smallest, each IFD after the previous one."""
    problems = ["Overviews should be sorted"] if factors != sorted(factors) else []
    previous = main.offset
    for ix, (factor, ovr) in enumerate(zip(factors, overviews, strict=True)):
        if factor <= 1:
            problems.append(f"Invalid Decimation {factor} for overview level {ix}")
        if ovr.offset < previous:
            before = "the main image" if ix == 0 else f"index {ix - 1}"
            problems.append(
                f"The offset of the IFD for overview of index {ix} is {ovr.offset}, whereas it "
                f"should be greater than the one of {before}, which is at byte {previous}"
            )
        previous = ovr.offset
    return problems


def _first_block_problems(main: Ifd, overviews: tuple[Ifd, ...]) -> list[str]:
    """Image data after all IFDs, smallest overview's data first, full resolution's last.

    Each image is represented by its first stored block, as in GDAL's validate script. (rio-cogeo
    searches a block grid with rows and columns swapped, which can miss the first stored block of
    a sparse image with non-square blocks; that is the one case where our verdict may differ.)
    An image without a stored block is left out of the comparison, as rio-cogeo leaves it out.
    """
    data = [ifd.first_block for ifd in (main, *overviews) if ifd.first_block > 0]
    problems: list[str] = []
    last_ifd = (overviews[-1] if overviews else main).offset
    if data and data[-1] < last_ifd:
        what = "the smallest overview" if overviews else "the image"
        problems.append(f"The offset of the first block of {what} should be after its IFD")
    for i in range(len(data) - 2, 0, -1):
        if data[i] < data[i + 1]:
            problems.append(
                f"The offset of the first block of overview of index {i - 1} should be after the "
                f"one of the overview of index {i}"
            )
    if len(data) >= 2 and data[0] < data[1]:
        problems.append(
            "The offset of the first block of the main resolution image should be after the one "
            f"of the overview of index {len(overviews) - 1}"
        )
    return problems
