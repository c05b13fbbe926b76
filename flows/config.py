"""BuildConfig: what to build, for which board, to which target; validated once here."""
from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from bnn2fpga.boards import Board, get_board
from bnn2fpga.flows.build_dir import check_out_dir
from bnn2fpga.errors import UserError

DEFAULT_CEILING = 0.85
#: A user's ``net.onnx`` may come with ``net.json`` (class names, host head, preprocessing).
SIDECAR_SUFFIX = ".json"
#: Implementations of binary-weight MVAUs: our RTL (hw/rtl/xnor_mvtu.sv) or FINN's HLS.
BINARY_MVAU_CHOICES = ("rtl", "hls")
#: rtl: every layer as RTL (ours where FINN has only HLS), so Vivado alone builds the bitstream;
#: finn: FINN's own choice (HLS where it has no RTL: needs Vitis HLS and finn-hlslib too).
LAYERS_CHOICES = ("rtl", "finn")


@dataclass(frozen=True)
class Source:
    """Where the network comes from: a zoo model (with an optional checkpoint) or a QONNX file."""

    model: str | None = None
    ckpt: Path | None = None
    onnx: Path | None = None

    @property
    def sidecar(self) -> Path | None:
        """The JSON sidecar beside a user's ONNX file (``net.onnx`` -> ``net.json``), if any."""
        if self.onnx is None:
            return None
        path = self.onnx.with_suffix(SIDECAR_SUFFIX)
        return path if path.exists() else None

    def files(self) -> list[tuple[str, Path]]:
        """Every file the export step reads, with its role: what the build key must cover."""
        out: list[tuple[str, Path]] = []
        if self.ckpt is not None:
            out.append(("checkpoint", self.ckpt))
        if self.onnx is not None:
            out.append(("onnx", self.onnx))
            out += [("external data", p) for p in onnx_external_files(self.onnx)]
            if self.sidecar is not None:
                out.append(("sidecar", self.sidecar))
        return out

    def fingerprint(self) -> str:
        """Changes whenever any byte the export step reads changes."""
        h = hashlib.sha256()
        h.update(f"{self.model}|".encode())
        for role, path in self.files():
            h.update(f"{role}|{path.name}|{file_digest(path)}|".encode())
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
    # Share of the ceiling the search leaves free for the estimate's error on this design
    # (synthesis judges the result against the ceiling itself).
    margin: float = 0.0

    @property
    def search_ceiling(self) -> float:
        """The ceiling the folding search holds the estimate under."""
        return self.ceiling * (1 - self.margin)

    @property
    def mode(self) -> str:
        """'file', 'fps' or 'search'."""
        return "file" if self.folding_file else ("fps" if self.fps else "search")

    def fingerprint(self) -> str:
        """Changes whenever the folding would change."""
        digest = file_digest(self.folding_file) if self.folding_file else ""
        return f"{self.mode}|{self.fps}|{digest}|{self.ceiling}|{self.margin}"


@dataclass(frozen=True)
class InputDecl:
    """The user's statement of a float input's integer format: ``x = scale * q``, q of ``dtype``.

    For networks exported without an input quantizer (``--input-scale 1/255 --input-dtype UINT8``,
    FINN's ToTensor convention); the tool never guesses it.
    """

    scale: float
    dtype: str

    def fingerprint(self) -> str:
        """Changes whenever the declaration does."""
        return f"{self.scale!r}|{self.dtype}"


INPUT_DTYPES = tuple([f"UINT{b}" for b in range(2, 17)] + [f"INT{b}" for b in range(2, 17)])


def parse_scale(text) -> float:
    """A positive finite scale from ``0.5``, ``1/255`` or ``2**-7`` (a one-line error otherwise)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = str(text).strip()
        try:
            if "/" in t:
                num, den = t.split("/", 1)
                value = float(num) / float(den)
            elif "**" in t:
                base, exp = t.split("**", 1)
                value = float(base) ** float(exp)
            else:
                value = float(t)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise UserError(f"--input-scale must be a number such as 0.5, 1/255 or 2**-7, got '{text}'") from None
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"--input-scale must be a positive finite number, got '{text}'")
    return value


@dataclass(frozen=True)
class BuildConfig:
    """A validated build request (construct it with :func:`make_config`)."""

    source: Source
    board: Board
    target: Target
    out_dir: Path
    until: str | None = None
    binary_mvau: str = "rtl"
    layers: str = "rtl"
    extra: dict = field(default_factory=dict)
    input_decl: InputDecl | None = None

    def to_dict(self) -> dict:
        """JSON-friendly summary for reports."""
        return {
            "model": self.source.model,
            "ckpt": str(self.source.ckpt) if self.source.ckpt else None,
            "onnx": str(self.source.onnx) if self.source.onnx else None,
            "board": self.board.name,
            "target": {"mode": self.target.mode, "fps": self.target.fps,
                       "folding_file": str(self.target.folding_file) if self.target.folding_file else None,
                       "ceiling": self.target.ceiling, "margin": self.target.margin},
            "out_dir": str(self.out_dir),
            "until": self.until,
            "binary_mvau": self.binary_mvau,
            "layers": self.layers,
            "input_decl": {"scale": self.input_decl.scale, "dtype": self.input_decl.dtype} if self.input_decl else None,
        }


def file_digest(path: Path) -> str:
    """Hex sha256 of a file (read in chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def regular_file(path: Path, label: str) -> Path:
    """``path`` if it is a regular file (symlinks followed); a FIFO, device or folder is refused.

    Reading ``/dev/zero`` or a FIFO never ends, so anything that is hashed or loaded is
    checked here first.
    """
    try:
        st = os.stat(path)
    except OSError:
        raise UserError(f"{label} not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UserError(f"{label} {path} is {kind}")
    return Path(path)


def onnx_external_files(onnx_path: Path) -> list[Path]:
    """The external data files an ONNX file names, each checked to be a regular file beside it.

    torch writes weights of larger models to ``<name>.onnx.data``, but any name is legal;
    a location that leaves the ONNX file's folder is refused (a model is data, not a
    licence to read the user's other files).
    """
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    regular_file(onnx_path, "ONNX file")
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError & co. for a corrupt file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot read ONNX file {onnx_path}: {msg}") from None
    if not proto.graph.node:
        raise UserError(f"ONNX file {onnx_path} holds no graph (empty or not an ONNX model)")
    base = Path(onnx_path).resolve().parent
    found: dict[str, Path] = {}
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        for attr in node.attribute:
            tensors += ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
    for t in tensors:
        if not uses_external_data(t):
            continue
        location = ExternalDataInfo(t).location
        target = Path(os.path.normpath(base / location))
        if Path(location).is_absolute() or base not in target.parents:
            raise UserError(f"ONNX file {onnx_path}: tensor '{t.name}' names external data '{location}' "
                            "outside the ONNX file's folder")
        if target.is_symlink():
            raise UserError(f"external data {target} of {onnx_path} is a symbolic link; put the file itself there")
        found.setdefault(location, regular_file(target, f"external data of {onnx_path}"))
    return [found[k] for k in sorted(found)]


def read_sidecar(path: Path) -> dict:
    """The sidecar JSON object, or a one-line error naming the file."""
    regular_file(path, "sidecar")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"sidecar {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"sidecar {path} must hold a JSON object, not {type(data).__name__}")
    for key in ("class_names",):
        if key in data and not (isinstance(data[key], list) and all(isinstance(c, str) for c in data[key])):
            raise UserError(f"sidecar {path}: '{key}' must be a list of strings")
    return data


def make_config(
    *,
    model: str | None = None,
    ckpt: str | Path | None = None,
    onnx: str | Path | None = None,
    board: str = "pynq-z2",
    fps: float | None = None,
    folding: str | Path | None = None,
    ceiling: float = DEFAULT_CEILING,
    margin: float = 0.0,
    out_dir: str | Path | None = None,
    until: str | None = None,
    binary_mvau: str = "rtl",
    input_scale: str | float | None = None,
    layers: str = "rtl",
    input_dtype: str | None = None,
) -> BuildConfig:
    """Check every user-supplied value once and return a typed BuildConfig."""
    from bnn2fpga.quantize.registry import UnknownModelError, get_spec

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
        if path is not None:
            regular_file(Path(path), label)
    if folding is not None:
        try:
            fold = json.loads(Path(folding).read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"folding file {folding} is not valid JSON: {e}") from None
        if not isinstance(fold, dict):
            raise UserError(f"folding file {folding} must hold a JSON object of layer names, "
                            f"not {type(fold).__name__}")
    if ckpt is not None:
        # Read now, so a corrupt or foreign checkpoint fails before the build folder exists.
        from bnn2fpga.quantize.train import load_checkpoint

        load_checkpoint(Path(ckpt), model=model)
    if onnx is not None:
        onnx_external_files(Path(onnx))
        side = Path(onnx).with_suffix(SIDECAR_SUFFIX)
        if side.exists():
            read_sidecar(side)
    if fps is not None and folding is not None:
        raise UserError("give --fps or --folding, not both")
    if fps is not None and not fps > 0:
        raise UserError(f"--fps must be positive, got {fps}")
    if fps is not None and not math.isfinite(fps):
        raise UserError(f"--fps must be a finite number, got {fps}")
    if not 0 < ceiling <= 1:
        raise UserError(f"--ceiling must be in (0, 1], got {ceiling}")
    if not 0 <= margin < 1:
        raise UserError(f"--margin must be in [0, 1), got {margin}")
    if binary_mvau not in BINARY_MVAU_CHOICES:
        raise UserError(f"--binary-mvau must be one of {', '.join(BINARY_MVAU_CHOICES)}, got '{binary_mvau}'")
    if layers not in LAYERS_CHOICES:
        raise UserError(f"--layers must be one of {', '.join(LAYERS_CHOICES)}, got '{layers}'")
    decl = None
    if (input_scale is None) != (input_dtype is None):
        raise UserError("give --input-scale and --input-dtype together (e.g. --input-scale 1/255 --input-dtype UINT8)")
    if input_scale is not None:
        if onnx is None:
            raise UserError("--input-scale/--input-dtype go with --onnx (zoo models quantize their input)")
        dtype = str(input_dtype).strip().upper()
        if dtype not in INPUT_DTYPES:
            raise UserError(f"--input-dtype must be UINTn or INTn with n in 2..16, got '{input_dtype}'")
        decl = InputDecl(scale=parse_scale(input_scale), dtype=dtype)
    from bnn2fpga.boards import BoardError

    try:
        board_obj = get_board(board)
    except BoardError as e:
        raise UserError(str(e)) from None
    src = Source(model=model, ckpt=Path(ckpt) if ckpt else None, onnx=Path(onnx) if onnx else None)
    if out_dir is None:
        out_dir = Path("build") / f"{src.label}-{board_obj.name}"
    check_out_dir(Path(out_dir))
    return BuildConfig(
        source=src,
        board=board_obj,
        target=Target(fps=fps, folding_file=Path(folding) if folding else None, ceiling=ceiling,
                      margin=margin),
        out_dir=Path(out_dir),
        until=until,
        binary_mvau=binary_mvau,
        layers=layers,
        input_decl=decl,
    )
