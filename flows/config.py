"""BuildConfig: what to build, for which board, to which target; validated once here."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from boards import Board, get_board
from flows.errors import UserError

DEFAULT_CEILING = 0.85
#: Implementations of binary-weight MVAUs: our RTL (hw/rtl/xnor_mvtu.sv) or FINN's HLS.
BINARY_MVAU_CHOICES = ("rtl", "hls")


@dataclass(frozen=True)
class Source:
    """Where the network comes from: a zoo model (with an optional checkpoint) or a QONNX file."""

    model: str | None = None
    ckpt: Path | None = None
    onnx: Path | None = None

    def fingerprint(self) -> str:
        """Changes whenever the network that would be built changes."""
        h = hashlib.sha256()
        h.update(f"{self.model}|".encode())
        for path in (self.ckpt, self.onnx):
            if path is not None:
                h.update(file_digest(path).encode())
                data = Path(str(path) + ".data")
                if data.exists():
                    h.update(file_digest(data).encode())
        return h.hexdigest()[:16]

    @property
    def label(self) -> str:
        """A short name for reports."""
        return self.model or (self.onnx.stem if self.onnx else "?")


@dataclass(frozen=True)
class Target:
    """Folding target: an FPS goal, a folding JSON, or (neither) the best FPS that fits."""

    fps: float | None = None
    folding_file: Path | None = None
    ceiling: float = DEFAULT_CEILING

    @property
    def mode(self) -> str:
        """'file', 'fps' or 'search'."""
        return "file" if self.folding_file else ("fps" if self.fps else "search")

    def fingerprint(self) -> str:
        """Changes whenever the folding would change."""
        digest = file_digest(self.folding_file) if self.folding_file else ""
        return f"{self.mode}|{self.fps}|{digest}|{self.ceiling}"


@dataclass(frozen=True)
class BuildConfig:
    """A validated build request (construct it with :func:`make_config`)."""

    source: Source
    board: Board
    target: Target
    out_dir: Path
    until: str | None = None
    binary_mvau: str = "rtl"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly summary for reports."""
        return {
            "model": self.source.model,
            "ckpt": str(self.source.ckpt) if self.source.ckpt else None,
            "onnx": str(self.source.onnx) if self.source.onnx else None,
            "board": self.board.name,
            "target": {"mode": self.target.mode, "fps": self.target.fps,
                       "folding_file": str(self.target.folding_file) if self.target.folding_file else None,
                       "ceiling": self.target.ceiling},
            "out_dir": str(self.out_dir),
            "until": self.until,
            "binary_mvau": self.binary_mvau,
        }


def file_digest(path: Path) -> str:
    """Hex sha256 of a file (read in chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_config(
    *,
    model: str | None = None,
    ckpt: str | Path | None = None,
    onnx: str | Path | None = None,
    board: str = "pynq-z2",
    fps: float | None = None,
    folding: str | Path | None = None,
    ceiling: float = DEFAULT_CEILING,
    out_dir: str | Path | None = None,
    until: str | None = None,
    binary_mvau: str = "rtl",
) -> BuildConfig:
    """Check every user-supplied value once and return a typed BuildConfig."""
    from flows.steps import step_names
    from quantize.registry import UnknownModelError, get_spec

    if (model is None) == (onnx is None):
        raise UserError("give either a model name or --onnx FILE (not both)")
    if model is not None:
        try:
            spec = get_spec(model)
        except UnknownModelError as e:
            raise UserError(str(e)) from None
        if not spec.deployable:
            hint = f"; build '{spec.deployable_variant}' instead" if spec.deployable_variant else ""
            raise UserError(f"'{spec.name}' is the paper-faithful model with float parts and cannot "
                            f"become hardware{hint}")
        model = spec.name
    if onnx is not None and ckpt is not None:
        raise UserError("--ckpt goes with a model name, not with --onnx")
    for label, path in (("checkpoint", ckpt), ("ONNX file", onnx), ("folding file", folding)):
        if path is not None and not Path(path).is_file():
            raise UserError(f"{label} not found: {path}")
    if folding is not None:
        try:
            json.loads(Path(folding).read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"folding file {folding} is not valid JSON: {e}") from None
    if fps is not None and folding is not None:
        raise UserError("give --fps or --folding, not both")
    if fps is not None and not fps > 0:
        raise UserError(f"--fps must be positive, got {fps}")
    if not 0 < ceiling <= 1:
        raise UserError(f"--ceiling must be in (0, 1], got {ceiling}")
    if binary_mvau not in BINARY_MVAU_CHOICES:
        raise UserError(f"--binary-mvau must be one of {', '.join(BINARY_MVAU_CHOICES)}, got '{binary_mvau}'")
    if until is not None and until not in step_names():
        raise UserError(f"unknown step '{until}'; steps: {', '.join(step_names())}")
    from boards import BoardError

    try:
        board_obj = get_board(board)
    except BoardError as e:
        raise UserError(str(e)) from None
    src = Source(model=model, ckpt=Path(ckpt) if ckpt else None, onnx=Path(onnx) if onnx else None)
    if out_dir is None:
        out_dir = Path("build") / f"{src.label}-{board_obj.name}"
    return BuildConfig(
        source=src,
        board=board_obj,
        target=Target(fps=fps, folding_file=Path(folding) if folding else None, ceiling=ceiling),
        out_dir=Path(out_dir),
        until=until,
        binary_mvau=binary_mvau,
    )
