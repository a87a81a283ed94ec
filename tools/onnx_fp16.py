#!/usr/bin/env python3
"""Make a float16 copy of a model folder exported by tools/export_onnx.py.

    python tools/onnx_fp16.py MODEL_DIR OUT_DIR [--keep-fp32 InstanceNormalization]

Every ``fold_*/model.onnx`` of MODEL_DIR is converted with onnxconverter-common's float16
converter: weights and arithmetic become float16, the graph's inputs and outputs stay float32
(so nnunet-rt feeds and reads it exactly like the float32 model), and the operators named by
``--keep-fp32`` (default: InstanceNormalization, whose mean and variance over a whole patch lose
too much in float16) keep running in float32 behind casts. ``plans.json``, ``dataset.json`` and
each fold's ``nnunet_rt_export.json`` are copied unchanged, so OUT_DIR is a complete model
folder for nnunet-rt.

Each converted fold is checked against its float32 original with ONNX Runtime (CPU) on a random
batch of two patches; the largest logit difference is printed (float16 keeps ~3 decimal digits).

Requires ``onnx``, ``onnxruntime`` and ``onnxconverter-common`` (pip).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def inline_initializer_identities(model) -> None:
    """Replaces every ``Identity`` of an initializer by a copy of that initializer.

    The TorchScript exporter shares equal weights through Identity nodes; the float16 converter
    would turn such a copy into float16 even where it feeds an operator kept in float32.
    """
    import onnx

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers]:
        copy = onnx.TensorProto()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)


def convert_fold(src: Path, dst: Path, keep_fp32: list[str], seed: int) -> float:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    inline_initializer_identities(model)
    converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=keep_fp32)
    onnx.checker.check_model(converted)
    onnx.save(converted, str(dst))

    options = ort.SessionOptions()
    options.log_severity_level = 3
    full = ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    half = ort.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    shape = [2] + [int(d) for d in full.get_inputs()[0].shape[1:]]
    batch = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    name = full.get_inputs()[0].name
    worst = 0.0
    for a, b in zip(full.run(None, {name: batch}), half.run(None, {name: batch})):
        worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--keep-fp32", default="InstanceNormalization",
                   help="comma-separated ONNX operator types kept in float32 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the check batch (default: %(default)s)")
    args = p.parse_args(argv)

    folds = sorted(d for d in args.model_dir.glob("fold_*") if (d / "model.onnx").is_file())
    if not folds:
        print(f"{args.model_dir}: no fold_*/model.onnx to convert", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copy2(args.model_dir / name, args.out_dir / name)
    keep = [op for op in args.keep_fp32.split(",") if op]
    for fold in folds:
        out = args.out_dir / fold.name
        out.mkdir(exist_ok=True)
        shutil.copy2(fold / "nnunet_rt_export.json", out / "nnunet_rt_export.json")
        worst = convert_fold(fold / "model.onnx", out / "model.onnx", keep, args.seed)
        print(json.dumps({"fold": fold.name, "max_abs_logit_difference_vs_fp32": worst}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
