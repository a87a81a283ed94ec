#!/usr/bin/env python3
"""Export the folds of a trained nnU-Net v2 model to ONNX for nnunet-rt.

For every fold of an nnU-Net v2 results folder (``plans.json``, ``dataset.json``,
``fold_N/checkpoint_final.pth``) this tool

1. rebuilds the network the way ``nnUNetPredictor.initialize_from_trained_model_folder`` does:
   the configuration comes from ``checkpoint['init_args']['configuration']``, the number of input
   channels from ``dataset.json`` (plus previous-stage labels for cascades), the number of outputs
   from the label manager, and the architecture from the trainer class named in the checkpoint
   (``build_network_architecture(..., enable_deep_supervision=False)``; nnU-Net's default is
   ``get_network_from_plans``). With ``--network-module FILE.py`` the network is built by
   ``FILE.build_network(plans, dataset_json, configuration, num_input_channels, num_outputs)``
   instead; its forward returns the segmentation logits, or a tuple
   ``(seg_logits, cls_logits)`` for a multi-task network;
2. loads ``network_weights`` strictly and switches to eval mode;
3. exports ``fold_N/model.onnx`` (TorchScript exporter, ``dynamo=False``): input ``input`` of shape
   ``(batch, C, Pz, Py, Px)`` (the plans' patch size, only the batch axis dynamic), outputs
   ``seg_logits`` ``(batch, K, Pz, Py, Px)`` and, for multi-task networks, ``cls_logits``
   ``(batch, n_classes)``;
4. runs ONNX Runtime (CPU) and torch on the same random batch of 2 patches and fails (exit status 1)
   if any output differs by more than ``--tolerance`` (default 1e-3);
5. writes ``fold_N/nnunet_rt_export.json``: what nnunet-rt needs from the checkpoint (trainer,
   configuration, allowed mirroring axes, output roles, classification class names and the labels
   that count as evidence for the classification) and the measured differences.

``plans.json`` and ``dataset.json`` are left untouched; nnunet-rt reads them from the model folder.

Examples::

    python tools/export_onnx.py $nnUNet_results/Dataset001_X/nnUNetTrainer__nnUNetPlans__3d_fullres
    python tools/export_onnx.py MODEL_DIR -f 0 1 --checkpoint checkpoint_best.pth
    python tools/export_onnx.py MODEL_DIR --network-module tools/networks/multitask_resenc.py \\
        --class-names subtype0,subtype1,subtype2 --evidence-labels 2

Custom trainers must be importable by nnU-Net (installed in ``nnunetv2/training/nnUNetTrainer`` or
found through the ``nnUNet_extTrainer`` environment variable), unless ``--network-module`` is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import sys
import warnings

VERSION = "0.1.0"
FORMAT = "nnunet-rt-export"
FORMAT_VERSION = 1
METADATA_FILE = "nnunet_rt_export.json"
ONNX_FILE = "model.onnx"


def _parse_args(argv):
    p = argparse.ArgumentParser(
        prog="export_onnx.py",
        description="Export the folds of a trained nnU-Net v2 model (3d_fullres) to ONNX, with the "
                    "metadata file nnunet-rt reads (fold_N/model.onnx + fold_N/nnunet_rt_export.json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: python tools/export_onnx.py MODEL_DIR --network-module "
               "tools/networks/multitask_resenc.py --class-names a,b,c")
    p.add_argument("model_dir", metavar="MODEL_DIR",
                   help="nnU-Net v2 results folder (plans.json, dataset.json, fold_N/checkpoint_*.pth)")
    p.add_argument("-f", "--folds", nargs="+", default=None, metavar="FOLD",
                   help="folds to export (e.g. 0 1 2 or all); default: every fold_* folder holding the checkpoint")
    p.add_argument("--checkpoint", default="checkpoint_final.pth",
                   help="checkpoint file name inside each fold folder (default: %(default)s)")
    p.add_argument("--network-module", default=None, metavar="FILE.py",
                   help="Python file defining build_network(plans, dataset_json, configuration, "
                        "num_input_channels, num_outputs) -> torch.nn.Module; forward returns seg logits "
                        "or (seg_logits, cls_logits). Default: the checkpoint's trainer class")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, at least 17 (default: %(default)s)")
    p.add_argument("--class-names", default=None, metavar="A,B,C",
                   help="comma-separated names of the classification head's classes "
                        "(default: class0,class1,...); multi-task networks only")
    p.add_argument("--evidence-labels", default=None, metavar="L1,L2",
                   help="comma-separated segmentation labels whose predicted probability weights the "
                        "tiles when the case class is aggregated (default: the highest label)")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest accepted |ORT - torch| per output (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch and ONNX Runtime CPU threads (default: library default)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the verification input (default: %(default)s)")
    return p.parse_args(argv)


def _fold_sort_key(name: str):
    return (1, 0) if name == "all" else (0, int(name))


def discover_folds(model_dir: str, checkpoint: str) -> list[str]:
    folds = []
    for entry in os.listdir(model_dir):
        m = re.fullmatch(r"fold_(\d+|all)", entry)
        if m and os.path.isfile(os.path.join(model_dir, entry, checkpoint)):
            folds.append(m.group(1))
    return sorted(folds, key=_fold_sort_key)


def allow_trainer_lookup_without_primus() -> None:
    """Lets nnU-Net's trainer lookup work in environments without timm/torchvision.

    nnU-Net finds a trainer class by importing every module under nnunetv2/training/nnUNetTrainer
    (and only then the ``nnUNet_extTrainer`` folders). Its Primus trainers import timm, which needs
    torchvision; where that import fails the lookup would abort before it reaches the wanted class.
    The unimportable module is replaced by an empty one, so the lookup skips it; a checkpoint
    trained with a Primus trainer still fails, with a "could not find trainer" message.
    """
    import importlib
    import types

    name = "nnunetv2.training.nnUNetTrainer.primus.primus_trainers"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError as e:
        print(f"note: {name} cannot be imported ({e}); Primus trainers are skipped in the trainer lookup")
        sys.modules[name] = types.ModuleType(name)


def _load_module_from_file(path: str):
    name = "nnunet_rt_user_network_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import --network-module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "build_network"):
        raise SystemExit(f"--network-module {path} defines no build_network(...)")
    return module


def build_network(plans: dict, dataset_json: dict, checkpoint: dict, network_module: str | None):
    """Rebuilds the fold's network as nnUNetPredictor does (or through the user's module)."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    configuration = checkpoint["init_args"]["configuration"]
    cm = plans_manager.get_configuration(configuration)
    n_in = determine_num_input_channels(plans_manager, cm, dataset_json)
    n_out = plans_manager.get_label_manager(dataset_json).num_segmentation_heads

    if network_module is not None:
        module = _load_module_from_file(network_module)
        net = module.build_network(plans, dataset_json, configuration, n_in, n_out)
        how = f"build_network from {network_module}"
    else:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        allow_trainer_lookup_without_primus()
        trainer_class = recursive_find_trainer_class_by_name(checkpoint["trainer_name"])
        sig = inspect.signature(trainer_class.build_network_architecture)
        if "plans_manager" in sig.parameters:
            net = trainer_class.build_network_architecture(plans_manager, cm, n_in, n_out,
                                                           enable_deep_supervision=False)
        else:
            net = trainer_class.build_network_architecture(
                cm.network_arch_class_name, cm.network_arch_init_kwargs,
                cm.network_arch_init_kwargs_req_import, n_in, n_out, enable_deep_supervision=False)
        how = f"{checkpoint['trainer_name']}.build_network_architecture"

    weights = checkpoint["network_weights"]
    if weights and all(k.startswith("module.") for k in weights):
        # saved from DistributedDataParallel
        weights = {k[len("module."):]: v for k, v in weights.items()}
    net.load_state_dict(weights, strict=True)
    net.eval()
    return net, configuration, cm, n_in, n_out, how


def _as_outputs(result):
    import torch

    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, tuple) and len(result) == 2 and all(isinstance(r, torch.Tensor) for r in result):
        return list(result)
    if isinstance(result, (list, tuple)):
        raise SystemExit(f"the network returned {type(result).__name__} of {len(result)} elements; expected a "
                         "tensor or a (seg_logits, cls_logits) tuple. Is deep supervision still enabled?")
    raise SystemExit(f"the network returned {type(result).__name__}; expected a tensor or a tuple")


def export_fold(model_dir: str, fold: str, args, plans: dict, dataset_json: dict) -> dict:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    import nnunetv2

    fold_dir = os.path.join(model_dir, f"fold_{fold}")
    ckpt_path = os.path.join(fold_dir, args.checkpoint)
    checkpoint = torch.load(ckpt_path, map_location=torch.device("cpu"), weights_only=False)
    net, configuration, cm, n_in, n_out, how = build_network(plans, dataset_json, checkpoint, args.network_module)
    patch = [int(p) for p in cm.patch_size]
    if len(patch) not in (2, 3):
        raise SystemExit(f"configuration {configuration} has patch size {patch}; only 2D and 3D networks exist")
    print(f"fold {fold}: {how}, configuration {configuration}, {n_in} input channel(s), {n_out} outputs, "
          f"patch {patch}")

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((2, n_in, *patch), generator=gen, dtype=torch.float32)
    with torch.no_grad():
        ref = [o.detach().numpy().copy() for o in _as_outputs(net(x))]
    if ref[0].shape != (2, n_out, *patch):
        raise SystemExit(f"segmentation output has shape {ref[0].shape}, expected {(2, n_out, *patch)}")
    names = ["seg_logits"] + (["cls_logits"] if len(ref) == 2 else [])
    if len(ref) == 2 and ref[1].ndim != 2:
        raise SystemExit(f"classification output has shape {ref[1].shape}, expected (batch, n_classes)")

    onnx_path = os.path.join(fold_dir, ONNX_FILE)
    dynamic_axes = {"input": {0: "batch"}}
    dynamic_axes.update({n: {0: "batch"} for n in names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x[:1],), onnx_path, dynamo=False, opset_version=args.opset,
                          input_names=["input"], output_names=names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    onnx.checker.check_model(onnx.load(onnx_path))

    so = ort.SessionOptions()
    if args.threads > 0:
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    got = sess.run(names, {"input": x.numpy()})
    diffs = {}
    for name, r, g in zip(names, ref, got):
        if r.shape != g.shape:
            raise SystemExit(f"{name}: ORT shape {g.shape} != torch shape {r.shape}")
        diffs[name] = float(np.max(np.abs(r.astype(np.float64) - g.astype(np.float64))))
        print(f"  {name}: max |ORT - torch| = {diffs[name]:.3g}")

    outputs = [{"name": "seg_logits", "role": "segmentation_logits", "shape": ["batch", n_out, *patch]}]
    classification = None
    if len(names) == 2:
        n_cls = int(ref[1].shape[1])
        outputs.append({"name": "cls_logits", "role": "classification_logits", "shape": ["batch", n_cls]})
        if args.class_names:
            class_names = [c.strip() for c in args.class_names.split(",")]
            if len(class_names) != n_cls:
                raise SystemExit(f"--class-names gives {len(class_names)} names, the head has {n_cls} classes")
        else:
            class_names = [f"class{i}" for i in range(n_cls)]
        if args.evidence_labels:
            evidence = [int(v) for v in args.evidence_labels.split(",")]
        else:
            evidence = [max(_label_values(dataset_json))]
        classification = {"class_names": class_names, "evidence_labels": evidence}
    elif args.class_names or args.evidence_labels:
        print("  note: --class-names/--evidence-labels ignored, the network has no classification output")

    axes = checkpoint.get("inference_allowed_mirroring_axes")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exporter": {
            "tool": "export_onnx.py",
            "version": VERSION,
            "torch": torch.__version__.split("+")[0],
            "nnunetv2": getattr(nnunetv2, "__version__", None) or _dist_version("nnunetv2"),
            "onnx_opset": args.opset,
        },
        "checkpoint": args.checkpoint,
        "trainer_name": checkpoint["trainer_name"],
        "configuration": configuration,
        "fold": str(fold),
        "inference_allowed_mirroring_axes": None if axes is None else [int(a) for a in axes],
        "input": {"name": "input", "shape": ["batch", n_in, *patch], "dtype": "float32"},
        "outputs": outputs,
        "classification": classification,
        "verification": {"max_abs_diff": diffs},
    }
    with open(os.path.join(fold_dir, METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    bad = {k: v for k, v in diffs.items() if not (v <= args.tolerance)}
    if bad:
        print(f"  FAILED: difference above {args.tolerance}: {bad}", file=sys.stderr)
    meta["_ok"] = not bad
    return meta


def _label_values(dataset_json: dict) -> list[int]:
    values = []
    for name, v in dataset_json["labels"].items():
        if name == "ignore":
            continue
        values.extend(v if isinstance(v, (list, tuple)) else [v])
    return [int(v) for v in values]


def _dist_version(name: str):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def main(argv=None) -> int:
    args = _parse_args(argv)
    if args.opset < 17:
        raise SystemExit("--opset must be at least 17")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model_dir = os.path.abspath(args.model_dir)
    for required in ("plans.json", "dataset.json"):
        if not os.path.isfile(os.path.join(model_dir, required)):
            raise SystemExit(f"{model_dir} has no {required}; is it an nnU-Net v2 results folder?")
    with open(os.path.join(model_dir, "plans.json")) as f:
        plans = json.load(f)
    with open(os.path.join(model_dir, "dataset.json")) as f:
        dataset_json = json.load(f)
    folds = [str(f) for f in args.folds] if args.folds else discover_folds(model_dir, args.checkpoint)
    if not folds:
        raise SystemExit(f"no fold_*/{args.checkpoint} found in {model_dir}")
    for fold in folds:
        if not os.path.isfile(os.path.join(model_dir, f"fold_{fold}", args.checkpoint)):
            raise SystemExit(f"missing {os.path.join(model_dir, f'fold_{fold}', args.checkpoint)}")
    ok = True
    for fold in folds:
        ok &= export_fold(model_dir, fold, args, plans, dataset_json)["_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
