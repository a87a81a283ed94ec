"""Writes NnunetRt/Resources/Icons/NnunetRt.png, the module's and the extension's 128x128 icon.

Drawn here from geometry (no image library, no copied art): a dark rounded tile with a grey
axial "CT slice" ellipse, an orange organ-like blob and a small red lesion inside it, as a
segmentation overlay would show them. Run it with any Python 3; the output is deterministic.
"""

import struct
import zlib
from pathlib import Path

SIZE = 128


def pixel(x, y):
    cx, cy = x + 0.5, y + 0.5
    # Rounded tile.
    r = 18
    dx = max(r - cx, 0, cx - (SIZE - r))
    dy = max(r - cy, 0, cy - (SIZE - r))
    if dx * dx + dy * dy > r * r:
        return (0, 0, 0, 0)
    colour = (28, 36, 52)
    # Body cross-section.
    if ((cx - 64) / 50) ** 2 + ((cy - 66) / 38) ** 2 <= 1:
        colour = (118, 124, 132)
        # Organ (segment 1).
        if ((cx - 72) / 24) ** 2 + ((cy - 62) / 13) ** 2 <= 1:
            colour = (232, 140, 40)
            # Lesion (segment 2).
            if ((cx - 80) / 7) ** 2 + ((cy - 60) / 7) ** 2 <= 1:
                colour = (214, 48, 49)
        # Spine.
        elif ((cx - 64) / 9) ** 2 + ((cy - 92) / 8) ** 2 <= 1:
            colour = (235, 235, 230)
    return colour + (255,)


def png(width, height, rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(v for p in row for v in p) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main():
    out = Path(__file__).resolve().parents[1] / "NnunetRt" / "Resources" / "Icons" / "NnunetRt.png"
    out.write_bytes(png(SIZE, SIZE, [[pixel(x, y) for x in range(SIZE)] for y in range(SIZE)]))
    print(out)


if __name__ == "__main__":
    main()
