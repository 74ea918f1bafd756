"""minidl against PyTorch on the CPU, as a user sees it: training steps of every seed model.

    python benchmarks/vs_torch.py                     # every model; writes benchmarks/RESULTS.md and RESULTS.png
    python benchmarks/vs_torch.py --models kth_best lenet --rounds 2
    python benchmarks/vs_torch.py --only minidl --models kth_best   # minidl alone: before/after a change
    python benchmarks/vs_torch.py --scaling           # step time against batch size: SCALING.md and SCALING.png
    python benchmarks/vs_torch.py --ops               # per-op micro-benchmarks (in one process, interleaved)

The user's view: each library runs alone, in a fresh process per model and round (``steps.py``), with its
own default settings (minidl's import-time settings are part of minidl; PyTorch gets
``torch.set_num_threads(cores)`` and nothing else). Rounds alternate the libraries (minidl, torch, minidl,
torch, ...) so a slow spell of the machine hits both; every process gets the same weights and the same
batch, and their eval-mode losses must agree. Reported: the median step time of each library over all its
rounds, the ratio ``torch / minidl`` (> 1: minidl faster), each round's ratio, and each process's peak
memory.

OpenBLAS: each model is measured with ``OPENBLAS_CORETYPE`` as this environment sets it and with it (and
``OPENBLAS_L2_SIZE``) unset, as on a user's machine; only the benchmark's child processes see the change
(``--openblas`` picks other settings, e.g. ``Haswell``). The OpenBLAS kernels minidl ran with are printed.

Beside these, ``--interleaved`` (on by default here, ``--no-interleaved`` to skip) times both libraries in
this one process, step by step, with ``OMP_WAIT_POLICY=PASSIVE`` for both: the quick A/B mode of
``interleaved.py``, which is not how a user runs PyTorch (it slows PyTorch's small steps).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from steps import MODELS  # noqa: E402 - steps.py imports neither library at import time

SCALING_MODELS = ("fashion_001", "kth_best")
SCALING_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Both nets have a BatchNorm1d on (N, 512) features, which cannot train on one sample (PyTorch refuses too).
SMALLEST_BATCH = {"fashion_001": 2, "kth_best": 2}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def child_env(openblas: str) -> dict:
    """This environment with ``OPENBLAS_CORETYPE`` as ``openblas`` says: "env" (as it is), "unset" (and
    ``OPENBLAS_L2_SIZE`` unset too), or a core type to set."""
    env = dict(os.environ)
    if openblas == "unset":
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    elif openblas != "env":
        env["OPENBLAS_CORETYPE"] = openblas
    return env


def run_child(lib: str, model: str, batch: int, folder: Path, env: dict, steps: int, seconds: float,
              gemm: bool = False) -> dict:
    """One ``steps.py`` process: its JSON result."""
    command = [sys.executable, str(HERE / "steps.py"), lib, model, "--batch", str(batch), "--dir", str(folder),
               "--steps", str(steps), "--seconds", str(seconds)] + (["--gemm"] if gemm else [])
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def user_view(model: str, batch: int, folder: Path, env: dict, rounds: int, steps: int, seconds: float,
              only: str | None = None, gemm: bool = False) -> dict:
    """Rounds of alternated processes (minidl, torch, minidl, torch, ...) for one model: a table row."""
    libs = [only] if only else ["minidl", "torch"]
    runs = {lib: [] for lib in libs}
    for r in range(rounds):
        for lib in libs:
            runs[lib].append(run_child(lib, model, batch, folder, env, steps, seconds, gemm and r == 0))
    row = {"model": model, "batch": batch, "rounds": rounds}
    for lib, results in runs.items():
        times = [t for res in results for t in res["times"]]
        row[f"{lib}_ms"] = 1e3 * statistics.median(times)
        row[f"{lib}_round_ms"] = [1e3 * statistics.median(res["times"]) for res in results]
        row[f"{lib}_peak_mb"] = statistics.median(res["peak_mb"] for res in results)
        row[f"{lib}_check_loss"] = results[0]["check_loss"]
        row[f"{lib}_first_loss"] = results[0]["first_loss"]
        row[f"{lib}_version"] = results[0]["version"]
    first = runs[libs[0]][0]
    row["openblas_core"] = runs.get("minidl", [first])[0]["openblas_core"]
    row["gemm_gflops"] = runs.get("minidl", [first])[0].get("gemm_gflops")
    if only is None:
        if not np.isclose(row["minidl_check_loss"], row["torch_check_loss"], rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{model}: eval-mode losses differ: minidl {row['minidl_check_loss']:.6f}, "
                                 f"torch {row['torch_check_loss']:.6f}")
        row["ratio"] = row["torch_ms"] / row["minidl_ms"]
        row["round_ratios"] = [t / m for m, t in zip(row["minidl_round_ms"], row["torch_round_ms"])]
    return row


def geomean(values) -> float:
    return float(np.exp(np.mean(np.log(list(values)))))


def user_table(rows: list[dict]) -> list[str]:
    lines = ["| model | batch | eval loss minidl / torch | minidl ms | torch ms | ratio | ratio per round | "
             "minidl peak MB | torch peak MB | memory ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['minidl_check_loss']:.5f} / {r['torch_check_loss']:.5f} | "
            f"{r['minidl_ms']:.1f} | {r['torch_ms']:.1f} | **{r['ratio']:.2f}** | "
            f"{', '.join(f'{v:.2f}' for v in r['round_ratios'])} | {r['minidl_peak_mb']:.0f} | "
            f"{r['torch_peak_mb']:.0f} | {r['minidl_peak_mb'] / max(r['torch_peak_mb'], 1e-9):.2f} |")
    lowest = min(rows, key=lambda r: r["ratio"])
    lines += ["", f"Geometric mean of the ratios: **{geomean(r['ratio'] for r in rows):.2f}**; lowest: "
                  f"{lowest['model']} ({lowest['ratio']:.2f}); models at or above 1.0: "
                  f"{sum(r['ratio'] >= 1 for r in rows)} of {len(rows)}."]
    return lines


def write_results(info: dict, settings: dict, interleaved_rows: list[dict], path: Path) -> None:
    lines = [
        "# minidl vs PyTorch (CPU), as a user sees it", "",
        f"Measured {info['date']} on {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"minidl {info['minidl']}, PyTorch {info['torch']}.", "",
        f"Command: `{info['command']}`.", "",
        "Each library alone in a fresh process per model and round, with its own defaults (PyTorch: "
        "`torch.set_num_threads(cores)` only), rounds alternated minidl, torch, minidl, torch...; same weights "
        "and batch (the eval-mode losses agree). Training step = forward, cross-entropy, backward, Adam step. "
        "Step times are medians over all rounds; ratio = torch / minidl (> 1: minidl faster). Peak memory = "
        "how far three training steps raise the process's resident set above its level after a warm-up that "
        "loads the library's compiled code (median over rounds).",
    ]
    for setting, rows in settings.items():
        core = rows[0]["openblas_core"]
        gemm = rows[0].get("gemm_gflops")
        lines += ["", f"## `OPENBLAS_CORETYPE` {setting}: OpenBLAS ran its `{core}` kernels", ""]
        if gemm:
            lines += [f"float32 GEMM throughput (`numpy.matmul`, 2048x2048, every core): {gemm:.1f} GFLOP/s.", ""]
        lines += user_table(rows)
    if interleaved_rows:
        lines += ["", "## Interleaved in one process (quick A/B mode, not the user's view)", "",
                  "Both libraries in one process, steps alternated, `OMP_WAIT_POLICY=PASSIVE` for both (which "
                  f"slows PyTorch's small steps); OpenBLAS as in this environment "
                  f"(`OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE') or '(unset)'}`).", "",
                  "| model | batch | minidl ms | torch ms | ratio |", "|---|---|---|---|---|"]
        for r in interleaved_rows:
            lines.append(f"| {r['model']} | {r['batch']} | {r['minidl_ms']:.1f} | {r['torch_ms']:.1f} | "
                         f"{r['ratio']:.2f} |")
        lines += ["", f"Geometric mean: {geomean(r['ratio'] for r in interleaved_rows):.2f}."]
    path.write_text("\n".join(lines) + "\n")


def plot_ratios(settings: dict, interleaved_rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = {f"own process, OPENBLAS_CORETYPE {k}": v for k, v in settings.items()}
    if interleaved_rows:
        series["interleaved in one process"] = interleaved_rows
    names = [r["model"] for r in next(iter(series.values()))]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(names) * len(series) + 1.5))
    height = 0.8 / len(series)
    for i, (label, rows) in enumerate(series.items()):
        ratios = {r["model"]: r["ratio"] for r in rows}
        ax.barh([j + i * height for j in range(len(names))], [ratios.get(n, np.nan) for n in names],
                height=height, label=label)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(names))], names)
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xlabel("torch step time / minidl step time (> 1: minidl faster)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def interleaved_rows(models, steps: int, seconds: float) -> list[dict]:
    """The quick A/B mode, in this process (imports both libraries here, after every child has run)."""
    import interleaved
    rows = []
    for name in models:
        res = interleaved.bench_model(name, steps, seconds)
        m, t = statistics.median(res["minidl_times"]), statistics.median(res["torch_times"])
        rows.append({"model": name, "batch": res["batch"], "minidl_ms": 1e3 * m, "torch_ms": 1e3 * t, "ratio": t / m})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def scaling(models, batches, folder: Path, env: dict, rounds: int, path: Path) -> None:
    """Step time against batch size, both libraries: SCALING.md and SCALING.png."""
    rows = []
    for name in models:
        for batch in (b for b in batches if b >= SMALLEST_BATCH.get(name, 1)):
            row = user_view(name, batch, folder, env, rounds, steps=5, seconds=1.5)
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("model", "batch", "minidl_ms", "torch_ms", "ratio")}), flush=True)
    lines = ["# Step time against batch size", "",
             f"Measured {datetime.date.today().isoformat()} on {cpu_name()}, {os.cpu_count()} cores; "
             f"`python benchmarks/vs_torch.py --scaling` (each library alone in its process, {rounds} alternated "
             f"rounds; OpenBLAS `{rows[0]['openblas_core']}` kernels). A training step (forward, cross-entropy, "
             "backward, Adam). From batch 2: both nets have a BatchNorm1d on (N, 512) features, which cannot train "
             "on one sample in either library.", "",
             "| model | batch | minidl ms | torch ms | ratio | minidl img/s | torch img/s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['minidl_ms']:.2f} | {r['torch_ms']:.2f} | "
                     f"**{r['ratio']:.2f}** | {1e3 * r['batch'] / r['minidl_ms']:.0f} | "
                     f"{1e3 * r['batch'] / r['torch_ms']:.0f} |")
    path.write_text("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, color in zip(models, ("tab:blue", "tab:orange")):
        mine = [r for r in rows if r["model"] == name]
        b = [r["batch"] for r in mine]
        for lib, style in (("minidl", "-o"), ("torch", "--s")):
            axes[0].loglog(b, [r[f"{lib}_ms"] for r in mine], style, color=color, label=f"{name} {lib}")
            axes[1].semilogx(b, [1e3 * r["batch"] / r[f"{lib}_ms"] for r in mine], style, color=color,
                             label=f"{name} {lib}")
    axes[0].set_ylabel("ms per training step")
    axes[1].set_ylabel("images per second")
    for ax in axes:
        ax.set_xlabel("batch size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=3, help="alternated processes per library and model")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per process, at least")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per process, at least")
    parser.add_argument("--openblas", default="env,unset",
                        help="OPENBLAS_CORETYPE settings to measure, comma-separated: env (as this environment "
                             "has it), unset, or a core type such as Haswell")
    parser.add_argument("--only", choices=["minidl", "torch"], help="time one library alone, print, write nothing")
    parser.add_argument("--no-interleaved", action="store_true", help="skip the in-process interleaved mode")
    parser.add_argument("--scaling", action="store_true", help="step time against batch size instead")
    parser.add_argument("--ops", action="store_true", help="the per-op micro-benchmarks instead (interleaved)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of fewer steps, no interleaved mode")
    parser.add_argument("--out", type=Path, help="default: benchmarks/RESULTS.md (SCALING.md with --scaling)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.seconds, args.no_interleaved = 2, 5, 1.5, True
    if args.ops:
        import interleaved
        for label, m_fn, t_fn, shapes in interleaved.op_cases():
            print(json.dumps(interleaved.bench_op(label, m_fn, t_fn, shapes, args.steps, args.seconds / 4)), flush=True)
        return
    settings = list(dict.fromkeys(args.openblas.split(",")))
    if "env" in settings and "unset" in settings and "OPENBLAS_CORETYPE" not in os.environ:
        print("OPENBLAS_CORETYPE is not set in this environment: measuring it unset only", flush=True)
        settings.remove("env")
    with tempfile.TemporaryDirectory(prefix="minidl-bench-") as tmp:
        folder = Path(tmp)
        if args.scaling:
            scaling(SCALING_MODELS, SCALING_BATCHES, folder, child_env(settings[-1]), 2,
                    args.out or HERE / "SCALING.md")
            return
        results = {}
        for setting in settings:
            label = {"env": f"= {os.environ.get('OPENBLAS_CORETYPE')} (this environment)",
                     "unset": "unset"}.get(setting, f"= {setting}")
            rows = []
            for i, name in enumerate(args.models):
                row = user_view(name, MODELS[name][2], folder, child_env(setting), args.rounds, args.steps,
                                args.seconds, args.only, gemm=i == 0 and not args.only)
                rows.append(row)
                print(json.dumps({"openblas": setting, **{k: v for k, v in row.items() if "version" not in k}}),
                      flush=True)
            results[label] = rows
    if args.only:
        return
    inter = [] if args.no_interleaved else interleaved_rows(args.models, args.steps, args.seconds)
    first = next(iter(results.values()))[0]
    info = {"date": datetime.date.today().isoformat(), "cpu": cpu_name(), "cores": os.cpu_count(),
            "python": platform.python_version(), "minidl": first["minidl_version"], "torch": first["torch_version"],
            "command": " ".join(["python", "benchmarks/vs_torch.py", *(sys.argv[1:] if argv is None else argv)])}
    out = args.out or HERE / "RESULTS.md"
    write_results(info, results, inter, out)
    plot_ratios(results, inter, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
