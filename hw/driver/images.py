"""Where images come from: files (Pillow, else OpenCV), labeled folders, a camera (OpenCV)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import DriverError

__all__ = ["IMAGE_EXTENSIONS", "read_image", "list_images", "labeled_images", "Camera"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def read_image(path) -> np.ndarray:
    """uint8 RGB (H, W, 3), decoded as training decodes it (Pillow, converted to RGB)."""
    path = Path(path)
    try:
        from PIL import Image
    except ImportError:
        return _read_with_opencv(path)
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DriverError(f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _read_with_opencv(path: Path) -> np.ndarray:
    try:
        import cv2
    except ImportError:
        raise DriverError("reading image files needs Pillow or OpenCV (pip install pillow)") from None
    if not path.is_file():
        raise DriverError(f"cannot read image {path}: no such file")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DriverError(f"cannot read image {path}: not an image OpenCV can decode")
    return np.ascontiguousarray(img[:, :, ::-1])  # OpenCV decodes to BGR


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def list_images(paths: Sequence) -> list[Path]:
    """Image files named on the command line; a folder stands for the images directly in it."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = _images_in(p)
            if not found:
                raise DriverError(f"{p}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise DriverError(f"cannot read image {p}: no such file")
    return out


def _class_index(name: str, class_names: Sequence[str]) -> int | None:
    if name in class_names:
        return list(class_names).index(name)
    lowered = [c.lower() for c in class_names]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    # GTSRB-style numbered folders (00000 .. 00042) name the class index.
    if name.isdigit() and int(name) < len(class_names):
        return int(name)
    return None


def labeled_images(folder, class_names: Sequence[str]) -> list[tuple[Path, int]]:
    """(image, class index) for a folder with one sub-folder per class (its name or its number)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DriverError(f"{folder}: not a folder (validate wants one sub-folder per class)")
    out: list[tuple[Path, int]] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        idx = _class_index(sub.name, class_names)
        if idx is None:
            shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
            raise DriverError(f"{sub}: '{sub.name}' is not a class of this model (classes: {shown})")
        out += [(p, idx) for p in _images_in(sub)]
    if not out:
        raise DriverError(f"{folder}: no images in class sub-folders")
    return out


class Camera:
    """Frames from an OpenCV camera as uint8 RGB; opening fails with one line when absent."""

    def __init__(self, index: int):
        try:
            import cv2
        except ImportError:
            raise DriverError("--camera needs OpenCV (on a PYNQ image: sudo apt install python3-opencv)") from None
        self.index = index
        self._cv2 = cv2
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise DriverError(f"camera {index} cannot be opened (is a camera plugged in as /dev/video{index}?)")

    def frames(self) -> Iterator[np.ndarray]:
        """Frames until the camera stops delivering them."""
        while True:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                raise DriverError(f"camera {self.index} stopped delivering frames")
            yield np.ascontiguousarray(frame[:, :, ::-1])

    def close(self) -> None:
        """Release the device."""
        self._cap.release()

    def __enter__(self) -> "Camera":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
