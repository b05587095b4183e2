"""The `tadsr` console script: the process-wide set-up (the OpenMP wait policy, Ctrl-C), then
the sub-command that a module of `tadsr.commands` registers, and its exit status."""

from __future__ import annotations

import os
import signal
import sys

from tadsr.commands import COMMAND_MODULES, UsageError  # (a module without imports)

# Nothing else is imported or done when this module is imported: the console script imports
# it, and a Ctrl-C then must meet `entry`'s handler, not a half-done import (see `entry`).

# Idle OpenMP threads must sleep, not spin, while training: oneDNN starts its own OpenMP team
# even with one torch thread, and on a busy machine spinning teams made CPU training up to
# 20x slower. Inference commands let threads spin briefly (OpenMP's default) only when no
# other process is running: a forward pass is hundreds of short parallel regions, and on an
# idle 2-core machine sleeping between them made the whole upscale path 18 % slower (0.71
# against 0.58 s/MP, benchmarks/fast_ab.py); but beside one busy process the spinning made
# a 256-px upscale 0.6 s slower (2.65 s -> 3.3 s), and the model card's timings up to 8x
# slower under bursts of load. "Running now" is read from /proc/loadavg's runnable count,
# not from the load average, which our own previous run would still be raising.
# Set by `main` before torch is imported; an explicit OMP_WAIT_POLICY in the environment wins.
_SPIN_COMMANDS = ("upscale", "export", "bench")


def _command_word(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _machine_idle(samples: int = 10, gap_s: float = 0.003) -> bool:
    """True when, in most of a few looks over ~30 ms, this process is the only one running
    (an idle machine shows 1 in about 199 of 200 looks, one busy process 2 or more in all)."""
    import time

    try:
        alone = 0
        for _ in range(samples):
            with open("/proc/loadavg") as f:
                alone += int(f.read().split()[3].split("/")[0]) <= 1
            time.sleep(gap_s)
        return alone >= 0.7 * samples
    except (OSError, ValueError, IndexError):  # not Linux: the 1-minute load average
        try:
            return os.getloadavg()[0] < 0.5
        except OSError:
            return False


def set_openmp_policy(argv: list[str]) -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the command is an inference one on an idle machine
    (an explicit setting wins, so the 30 ms look is taken only when there is none)."""
    if "OMP_WAIT_POLICY" not in os.environ and (
        _command_word(argv) not in _SPIN_COMMANDS or not _machine_idle()
    ):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def build_parser():
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="tadsr",
        description="One-step diffusion super-resolution (TAD-SR) and its ResShift teacher.",
    )
    from tadsr._version import __version__

    parser.add_argument("--version", action="version", version=f"tadsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# set by `entry`'s SIGINT handler: an ImportError that follows a Ctrl-C is the Ctrl-C (numpy
# turns a KeyboardInterrupt inside its import into "C-extensions failed")
_interrupted = False


def _raise_interrupt(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _exit_interrupted(signum=None, frame=None) -> None:
    """Ctrl-C before the command runs: nothing to clean up, leave at once, quietly."""
    os.write(2, b"tadsr: interrupted\n")
    os._exit(130)


def main(argv: list[str] | None = None, *, _from_entry: bool = False) -> int:
    # Ctrl-C can come while the sub-commands import torch (seconds): end quietly there too.
    args = None
    try:
        set_openmp_policy(sys.argv[1:] if argv is None else argv)
        parser = build_parser()
        args = parser.parse_args(argv)
        if _from_entry and signal.getsignal(signal.SIGINT) is _exit_interrupted:
            # the command may clean up on Ctrl-C (KeyboardInterrupt) from now on
            signal.signal(signal.SIGINT, _raise_interrupt)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except UsageError as exc:
        where = "tadsr" if args is None else f"tadsr {args.command}"  # before parsing: no command
        print(f"{where}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tadsr: interrupted", file=sys.stderr)
        return 130
    except ImportError:
        if not _interrupted:
            raise
        print("tadsr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`tadsr info F | head -1`): stop quietly, and
        # point stdout at /dev/null so that the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a process killed by it


def entry() -> None:
    """The console script. The SIGINT handler comes first: a Ctrl-C while the command is
    being set up (parser, imports) ends the process at once with 130 and one line, never a
    traceback. After Ctrl-C, leave at once: an import that torch was in the middle of can
    leave state whose clean-up at interpreter exit re-raises the signal."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # (ignored: a background job)
        signal.signal(signal.SIGINT, _exit_interrupted)
    code = main(_from_entry=True)
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":  # `python -m tadsr.cli` (and torchrun -m tadsr.cli)
    entry()
