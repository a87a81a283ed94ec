#!/usr/bin/env python3
"""How far is nnunet-rt from nnU-Net on a volume nobody tuned on, compared with nnU-Net itself
when only its network is swapped for ONNX Runtime?

Runs on one bench case (see bench.py; it reuses its cached model and volume):
  A  nnU-Net 2.8.1 on CPU, PyTorch network (the reference, what nnUNetv2_predict -device cpu gives);
  B  the same nnU-Net pipeline with the network replaced by ONNX Runtime running fold_0/model.onnx;
  C  nnunet-rt predict.
and prints the voxels that differ and the per-label Dice for A-B, A-C and B-C. B-C isolates
everything that is not the network: it should be 0 (or a handful of float16 rounding ties).

Usage: .venv-nnunet/bin/python tools/bench/untuned_parity.py [--case small] [--tta]
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402


class OrtNetwork:
    """Stands in for the torch module inside nnUNetPredictor: same call signature, ORT inside."""

    def __init__(self, onnx_path, threads):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def __call__(self, x):
        import torch
        out = self.session.run([self.output], {self.input: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(out)

    # nnUNetPredictor calls these on its network.
    def eval(self):
        return self

    def to(self, *_args, **_kwargs):
        return self

    def load_state_dict(self, *_args, **_kwargs):
        return None


def run_nnunet(model, case, out, threads, tta, ort_network):
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(k, "/tmp")
    import torch
    torch.set_num_threads(threads)
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=False, device=torch.device("cpu"),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    if ort_network:
        predictor.network = OrtNetwork(model / "fold_0" / "model.onnx", threads)
        # The predictor reloads fold weights into the network before predicting; keep ORT's.
        predictor.list_of_parameters = [None]
    predictor.predict_from_files([[str(case)]], [str(out)], save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=0, num_processes_segmentation_export=0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", default="small", choices=sorted(bench.CASES))
    p.add_argument("--tta", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "nnunet-rt"))
    a = p.parse_args()
    model = bench.make_model(bench.CASES[a.case]["model"])
    case = bench.make_case(a.case)
    out = bench.WORK / "untuned" / a.case
    out.mkdir(parents=True, exist_ok=True)
    paths = {"A": out / "nnunet_torch", "B": out / "nnunet_ort", "C": out / "nnunet_rt.nii.gz"}
    bench.log("A: nnU-Net with its PyTorch network")
    run_nnunet(model, case, paths["A"], a.threads, a.tta, ort_network=False)
    bench.log("B: nnU-Net with the network swapped for ONNX Runtime")
    run_nnunet(model, case, paths["B"], a.threads, a.tta, ort_network=True)
    bench.log("C: nnunet-rt")
    cmd = [a.binary, "predict", "-m", str(model), "-i", str(case), "-o", str(paths["C"]), "-f", "0", "-q"]
    subprocess.run(cmd + ([] if a.tta else ["--disable-tta"]), check=True)
    segs = {k: bench.read_labels(str(v) + ".nii.gz" if k != "C" else v) for k, v in paths.items()}
    result = {"case": a.case, "tta": a.tta, "voxels": int(segs["A"].size)}
    for x, y in (("A", "B"), ("A", "C"), ("B", "C")):
        labels = sorted(set(segs[x].flat) | set(segs[y].flat) - {0})
        result[f"{x}-{y}"] = {"differing_voxels": int((segs[x] != segs[y]).sum()),
                              "dice": {int(l): round(float(bench.dice(segs[x], segs[y], l)), 6) for l in labels}}
    print(json.dumps(result, indent=2))
    (bench.WORK / f"untuned-{a.case}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
