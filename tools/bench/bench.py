#!/usr/bin/env python3
"""Side-by-side benchmark of nnunet-rt and nnU-Net's own predictor on the same model and case:
nnU-Net (PyTorch float32, its CPU default) against nnunet-rt on ONNX Runtime's CPU provider, on
OpenVINO float32 and on OpenVINO bfloat16.

Run through `cargo xtask bench` (which builds the release binary and the Python environment);
directly: `.venv-nnunet/bin/python tools/bench/bench.py --case small --runs 3`.

For each case it makes (once, cached under target/bench/):
  * a model folder in nnU-Net's format with random weights (checkpoint_final.pth for nnU-Net, and
    fold_0/model.onnx + metadata from tools/export_onnx.py for nnunet-rt). Random weights are fine
    for timing; both tools get the same weights;
  * a synthetic int16 CT volume.
Then it alternates the nnunet-rt variants (CLI, `--device`/`--network-precision`) and nnU-Net
(tools/bench/run_nnunet.py) with the same folds, step size, mirroring and thread count, and prints
medians, min-max and nnU-Net/variant ratios for the end-to-end wall time, everything but the
network, the time per network forward and what it achieves in GFLOP/s against this CPU's float32
peak (FLOPs counted from the ONNX graph by tools/bench/flops.py), the peak RSS of each process
(os.wait4), and each variant's differing voxels and per-label Dice against nnU-Net.

Cases:
  small     the fixture architecture (3 stages, 8-16-32 features, patch 16x32x48) on a
            40x160x160 CT at 0.8x0.8x2.5 mm: hundreds of tiles, overhead dominates;
  pancreas  ResEncUNet-M (6 stages, 32..320 features, patch 64x128x192, spacing 2.0x0.732x0.732)
            on a cropped pancreas-sized CT, 56x150x160 at 0.8x0.8x2.5 mm (~2 M voxels resampled);
  full      ResEncUNet-M on a 512x512x100 abdominal CT at 0.78x0.78x2.5 mm (120 tiles; long).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "target" / "bench"
PY = sys.executable

RESENC_M_ARCH = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
    "arch_kwargs": {
        "n_stages": 6,
        "features_per_stage": [32, 64, 128, 256, 320, 320],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
        "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
        "n_blocks_per_stage": [1, 3, 4, 6, 6, 6],
        "n_conv_per_stage_decoder": [1, 1, 1, 1, 1],
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}

CASES = {
    "small": {"model": "small", "shape_zyx": (40, 160, 160), "spacing_xyz": (0.8, 0.8, 2.5)},
    "pancreas": {"model": "resenc_m", "shape_zyx": (56, 150, 160), "spacing_xyz": (0.8, 0.8, 2.5)},
    "full": {"model": "resenc_m", "shape_zyx": (100, 512, 512), "spacing_xyz": (0.78125, 0.78125, 2.5)},
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_model(name: str) -> Path:
    """A model folder with random weights, exported to ONNX; cached."""
    out = WORK / "models" / name
    if (out / "fold_0" / "model.onnx").is_file():
        return out
    import numpy as np
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    fixture = ROOT / "tests" / "fixtures" / "models" / "resenc_ct"
    plans = json.loads((fixture / "plans.json").read_text())
    dataset = json.loads((fixture / "dataset.json").read_text())
    if name == "resenc_m":
        config = copy.deepcopy(plans["configurations"].get("3d_base", plans["configurations"]["3d_fullres"]))
        config.update({"patch_size": [64, 128, 192], "spacing": [2.0, 0.73046875, 0.73046875],
                       "architecture": RESENC_M_ARCH, "data_identifier": "nnUNetResEncUNetMPlans_3d_fullres"})
        plans["configurations"] = {"3d_fullres": config}
        plans["foreground_intensity_properties_per_channel"] = {"0": {
            "mean": 74.89175415039062, "std": 44.09819793701172, "percentile_00_5": -55.99610900878906,
            "percentile_99_5": 179.97802734375, "median": 77.0, "min": -1000.0, "max": 1000.0}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "plans.json").write_text(json.dumps(plans, indent=2))
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                 cm.network_arch_init_kwargs_req_import, 1, 3, allow_init=True,
                                 deep_supervision=False)
    checkpoint = {
        "network_weights": net.state_dict(), "optimizer_state": None, "grad_scaler_state": None,
        "logging": {}, "_best_ema": None, "current_epoch": 0,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset,
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    (out / "fold_0").mkdir(exist_ok=True)
    torch.save(checkpoint, out / "fold_0" / "checkpoint_final.pth")
    log(f"exporting {name} to ONNX (verifies ONNX Runtime against torch; ResEncUNet-M takes minutes)")
    subprocess.run([PY, str(ROOT / "tools" / "export_onnx.py"), str(out), "-f", "0"], check=True)
    return out


def make_case(name: str) -> Path:
    out = WORK / "cases" / f"{name}.nii.gz"
    if out.is_file():
        return out
    import numpy as np
    import SimpleITK as sitk
    spec = CASES[name]
    z, y, x = spec["shape_zyx"]
    rng = np.random.default_rng(7)
    zz, yy, xx = np.meshgrid(np.linspace(-1, 1, z), np.linspace(-1, 1, y), np.linspace(-1, 1, x), indexing="ij")
    body = (yy / 0.8) ** 2 + (xx / 0.9) ** 2 < 1
    organ = ((zz / 0.5) ** 2 + ((yy - 0.1) / 0.25) ** 2 + ((xx + 0.1) / 0.4) ** 2) < 1
    lesion = ((zz / 0.2) ** 2 + ((yy - 0.1) / 0.1) ** 2 + ((xx + 0.05) / 0.1) ** 2) < 1
    ct = np.full((z, y, x), -1000.0)
    ct[body] = 30
    ct[organ] = 100
    ct[lesion] = 40
    ct += rng.normal(0, 15, ct.shape)
    image = sitk.GetImageFromArray(np.round(ct).astype(np.int16))
    image.SetSpacing(spec["spacing_xyz"])
    out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(out), useCompression=True)
    return out


def run_measured(cmd, env=None):
    """Runs cmd through tools/bench/measure.py; returns (wall seconds, peak RSS bytes, stdout)."""
    launcher = [sys.executable, str(ROOT / "tools" / "bench" / "measure.py"), "--"]
    proc = subprocess.run(launcher + cmd, capture_output=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr.decode()[-3000:]}")
    measured = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    return measured["wall_s"], measured["peak_rss_bytes"], proc.stdout.decode()


def read_labels(path):
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def dice(a, b, label):
    x, y = a == label, b == label
    n = x.sum() + y.sum()
    return 1.0 if n == 0 else 2.0 * (x & y).sum() / n


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# nnunet-rt variants measured against nnU-Net, each as its own process: (name, CLI arguments).
VARIANTS = [
    ("ort-cpu", ["--device", "cpu"]),
    ("openvino-f32", ["--device", "openvino", "--network-precision", "f32"]),
    ("openvino-bf16", ["--device", "openvino", "--network-precision", "bf16"]),
]
BASELINE = "nnU-Net"


def cpu_peak_gflops(threads):
    """This CPU's float32 peak for `threads` cores, from its nominal clock: AVX-512 with two FMA
    units per core (2 units x 16 lanes x 2 flops = 64 flops per cycle), AVX2 with two (32)."""
    mhz, flags = None, ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz") and mhz is None:
            mhz = float(line.split(":")[1])
        if line.startswith("flags") and not flags:
            flags = line
    per_cycle = 64 if " avx512f" in flags else 32
    return threads * (mhz or 0) / 1e3 * per_cycle, mhz, per_cycle


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), default="small")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--tta", action="store_true", help="mirroring TTA on (default off: 8x fewer passes)")
    p.add_argument("--step-size", type=float, default=0.5)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "nnunet-rt"))
    p.add_argument("--variants", nargs="+", default=[v for v, _ in VARIANTS],
                   help="nnunet-rt variants to run: " + ", ".join(v for v, _ in VARIANTS))
    a = p.parse_args()

    spec = CASES[a.case]
    model = make_model(spec["model"])
    case = make_case(a.case)
    out_dir = WORK / "out" / a.case
    out_dir.mkdir(parents=True, exist_ok=True)
    tta = [] if a.tta else ["--disable-tta"]
    commands = {}
    for name, extra in VARIANTS:
        if name in a.variants:
            commands[name] = [a.binary, "predict", "-m", str(model), "-i", str(case), "-o",
                              str(out_dir / f"{name}.nii.gz"), "-f", "0", "--threads", str(a.threads),
                              "--step-size", str(a.step_size), "-q"] + tta + extra
    theirs_cmd = [PY, str(ROOT / "tools" / "bench" / "run_nnunet.py"), str(model), str(case),
                  str(out_dir / "nnunet.nii.gz"), "--folds", "0", "--threads", str(a.threads),
                  "--step-size", str(a.step_size)] + tta
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    rows = {name: [] for name in commands}
    rows[BASELINE] = []
    runtime = {}
    for r in range(a.runs):
        for name, cmd in commands.items():
            log(f"run {r + 1}/{a.runs}: nnunet-rt {name}")
            wall, rss, _ = run_measured(cmd, env)
            report = json.loads((out_dir / f"{name}.json").read_text())
            runtime[name] = report.get("runtime")
            rows[name].append({"wall": wall, "rss": rss, "stages": report["timings_ms"],
                               "forwards": report["tiles_per_fold"] * report["passes_per_tile"] * len(report["folds"])})
        log(f"run {r + 1}/{a.runs}: nnU-Net")
        wall, rss, stdout = run_measured(theirs_cmd, env)
        theirs = json.loads(stdout.strip().splitlines()[-1])
        rows[BASELINE].append({"wall": wall, "rss": rss, "stages": theirs["timings_ms"],
                               "forwards": theirs["tiles_per_fold"] * theirs["passes_per_tile"] * theirs["folds"]})

    sys.path.insert(0, str(Path(__file__).parent))
    from flops import network_flops
    flops = network_flops(model / "fold_0" / "model.onnx")
    peak, mhz, per_cycle = cpu_peak_gflops(a.threads)
    seg_b = read_labels(out_dir / "nnunet.nii.gz")

    def stat(tool, key):
        return summary([row["stages"].get(key, 0.0) / 1e3 for row in rows[tool]])

    def non_network(tool):
        return summary([sum(v / 1e3 for k, v in row["stages"].items() if k in ("read", "preprocess", "export", "write"))
                        for row in rows[tool]])

    result = {"case": a.case, "model": spec["model"], "threads": a.threads, "tta": a.tta, "runs": a.runs,
              "machine": os.uname().machine, "cpus": os.cpu_count(), "network_gflop_per_forward": flops / 1e9,
              "cpu_fp32_peak_gflops": peak, "cpu_mhz": mhz, "flops_per_cycle_assumed": per_cycle,
              "voxels": int(seg_b.size), "tools": {}}
    for tool in rows:
        forwards = rows[tool][0]["forwards"]
        per_forward = summary([row["stages"]["network"] / 1e3 / forwards for row in rows[tool]])
        entry = {
            "end_to_end_s": summary([row["wall"] for row in rows[tool]]),
            "peak_rss_mib": summary([row["rss"] / 2**20 for row in rows[tool]]),
            "stages_s": {k: stat(tool, k) for k in ("read", "preprocess", "network", "export", "write")},
            "all_but_network_s": non_network(tool),
            "forwards": forwards,
            "per_forward_s": per_forward,
            "gflops_achieved": flops / 1e9 / per_forward["median"],
        }
        if tool != BASELINE:
            seg_a = read_labels(out_dir / f"{tool}.nii.gz")
            entry["differing_voxels_vs_nnunet"] = int((seg_a != seg_b).sum())
            entry["dice_vs_nnunet"] = {int(l): dice(seg_a, seg_b, l)
                                       for l in sorted(set(seg_a.flat) | set(seg_b.flat)) if l != 0}
            entry["runtime"] = runtime.get(tool)
        result["tools"][tool] = entry
    (WORK / f"results-{a.case}.json").write_text(json.dumps(result, indent=2))

    base = result["tools"][BASELINE]
    names = [t for t in rows if t != BASELINE] + [BASELINE]
    print(f"case {a.case} ({spec['model']}), {a.runs} runs each, alternating, {a.threads} threads, "
          f"TTA {'on' if a.tta else 'off'}; medians (min-max); x = nnU-Net / this")
    print(f"{'':<16}" + "".join(f"{n:>29}" for n in names))

    def row(label, pick, unit, fmt="{:.3f}"):
        cells = []
        for n in names:
            v = pick(result["tools"][n])
            if isinstance(v, dict):
                b = pick(base)["median"]
                ratio = f" {b / v['median']:.2f}x" if n != BASELINE and v["median"] > 0 else ""
                cells.append(f"{fmt.format(v['median'])} ({fmt.format(v['min'])}-{fmt.format(v['max'])}){ratio}")
            else:
                cells.append(str(v))
        print(f"{label:<16}" + "".join(f"{c:>29}" for c in cells) + f"  {unit}")

    row("end to end", lambda t: t["end_to_end_s"], "s")
    row("all but network", lambda t: t["all_but_network_s"], "s")
    row("per forward", lambda t: t["per_forward_s"], f"s ({base['forwards']} forwards)")
    row("achieved", lambda t: f"{t['gflops_achieved']:.0f} GFLOP/s ({100 * t['gflops_achieved'] / peak:.0f} %)", "")
    row("peak RSS", lambda t: t["peak_rss_mib"], "MiB", "{:.0f}")
    row("differing voxels", lambda t: t.get("differing_voxels_vs_nnunet", "-"), f"of {seg_b.size}")
    row("Dice vs nnU-Net", lambda t: " ".join(f"{d:.4f}" for d in t.get("dice_vs_nnunet", {}).values()) or "-", "per label")
    print(f"network: {flops / 1e9:.1f} GFLOP per forward (convolutions); CPU fp32 peak {peak:.0f} GFLOP/s "
          f"({a.threads} cores x {mhz / 1e3:.2f} GHz x {per_cycle} flops/cycle)")
    print(f"results: {WORK / f'results-{a.case}.json'}")


if __name__ == "__main__":
    main()
