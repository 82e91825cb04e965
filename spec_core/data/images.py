"""Image files as a person sees them: one 8-bit RGB picture per file, whatever its mode, for the
encoders, the thumbnails and the reports."""

from __future__ import annotations

#: How files become RGB images (part of the cache key): first frame, turned upright as its
#: EXIF orientation says, transparency on white, 16-bit and float samples scaled to 8 bits.
IMAGE_LOADING = "first-frame|exif-upright|alpha-on-white|16bit-scaled|v3"


def load_rgb(path: str):
    """An image file as 8-bit RGB, as a person sees it on a page: the first frame of an
    animation, turned upright as its EXIF orientation tag says (a phone stores a portrait
    photo sideways with a tag); transparent pixels on white (not the undefined colour under
    alpha = 0); 16-bit and 32-bit integer samples (PNG's I;16 / I) scaled by 255/65535 and
    float samples (F) by 255 when in [0, 1], rather than clipped at 255 (which turns most of a
    16-bit image white); CMYK, YCbCr, LAB, HSV, 1 and P through Pillow's conversions."""
    from PIL import Image

    with Image.open(path) as img:
        img.seek(0)
        img.load()
        return to_rgb(_upright(img))


def _upright(img):
    """The image turned as its EXIF orientation tag says; as stored when there is no tag or
    the EXIF block is damaged."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # Pillow raises many types for a damaged EXIF block
        return img


def to_rgb(img):
    """A PIL image in any mode as 8-bit RGB (see `load_rgb`)."""
    from PIL import Image

    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        img = _to_8bit_gray(img)
        mode = "L"
    if mode in ("RGBa", "La"):  # premultiplied alpha
        img = img.convert("RGBA")
        mode = "RGBA"
    has_alpha = mode in ("RGBA", "LA", "PA") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _to_8bit_gray(img):
    """An I;16*, I or F image as an 8-bit L image with the same relative brightness."""
    import numpy as np
    from PIL import Image

    samples = np.asarray(img)
    if samples.dtype.kind == "f":
        samples = np.nan_to_num(samples.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = 1.0 if samples.size == 0 or samples.max() <= 1.0 else 255.0
        scaled = samples / top * 255.0
    else:
        samples = samples.astype(np.int64)
        top = 65535.0 if samples.size == 0 or samples.max() <= 65535 else float(samples.max())
        scaled = samples / top * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
