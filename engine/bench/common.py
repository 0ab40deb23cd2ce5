"""What the speed benchmarks share: interleaved timing, the machine line, memory, the table or --json.

Ours and the reference run alternately in one process (ABBA order, after a warm-up), so a
machine shared with other work slows both alike; a round's time is read after a device
synchronisation. Memory is measured for each side in a fresh subprocess (`run_child`), where the
peak belongs to that side alone.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

ROUNDS = 5


def add_arguments(parser, rounds: int = ROUNDS) -> None:
    """The options every comparison bench takes: rounds, then the machine options."""
    parser.add_argument("--rounds", type=int, default=rounds, help=f"timed rounds of each side (default {rounds})")
    add_machine_arguments(parser)


def add_machine_arguments(parser) -> None:
    """The options every bench takes: device, threads, --json (what `setup` and `report` read)."""
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when present, else cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def setup(args):
    """The torch device of `args` (CUDA precision settings applied), with the thread count set once."""
    import torch

    from engine.device import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    return pick_device(args.device)


def machine(device) -> dict:
    """Where the numbers come from: device, threads, load average, date and library versions."""
    import torch
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "device": f"{device.type}: {name}",
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def cpu_name() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(sides: dict[str, Callable[[], object]], rounds: int, device, warmup: int = 1) -> dict[str, list]:
    """Seconds per call of each side over `rounds` rounds, the order reversed every other round."""
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
    synchronize(device)
    seconds = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            sides[name]()
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_child(target: str, **kwargs) -> dict:
    """Call `module:function(**kwargs)` in a fresh Python process; its JSON result."""
    module, function = target.split(":")
    code = (
        f"import json, sys\nfrom {module} import {function}\nprint(json.dumps({function}(**json.loads(sys.argv[1]))))"
    )
    done = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed in a subprocess:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident set (VmRSS) or its peak so far (VmHWM), from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux `clear_refs` 5); a fresh process needs no reset."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def table(headers: list[str], rows: list[list]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells
    ]
    return "\n".join(lines)


def report(args, result: dict, text: str, last_line: str) -> int:
    """Print `result` as JSON with --json, else the table, the machine line and the headline last."""
    if args.json:
        print(json.dumps(result))
        return 0
    m = result["machine"]
    print(text)
    print(
        f"{m['device']}, {m['threads']} threads of {m['cpu_count']} cores, "
        f"load {' '.join(map(str, m['load_average']))}, {m['date']}, "
        f"torch {m['torch']}, transformers {m['transformers']}"
    )
    print(last_line)
    return 0
