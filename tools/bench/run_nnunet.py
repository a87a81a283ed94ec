#!/usr/bin/env python3
"""Predict one case with nnU-Net's own predictor on CPU, timing each stage like nnunet-rt does.

Usage: run_nnunet.py MODEL_DIR INPUT.nii.gz OUTPUT.nii.gz --folds 0 --threads 2 [--disable-tta]
       [--step-size 0.5]

Prints one JSON object: stage timings (ms) for read, preprocess, network, export and write,
the number of tiles, and the process's own wall time since start (including imports). The
sequence is nnUNetv2_predict's for one case (read with the plans' reader, DefaultPreprocessor,
predict_logits_from_preprocessed_data, export, write), run sequentially in this process.
"""
import argparse
import json
import os
import sys
import time

START = time.perf_counter()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--folds", nargs="+", default=["0"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--disable-tta", action="store_true")
    p.add_argument("--step-size", type=float, default=0.5)
    a = p.parse_args()

    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(k, "/tmp")
    import torch
    torch.set_num_threads(a.threads)
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    t = {}
    t0 = time.perf_counter()
    predictor = nnUNetPredictor(tile_step_size=a.step_size, use_gaussian=True, use_mirroring=not a.disable_tta,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    folds = tuple(int(f) if f.isdigit() else f for f in a.folds)
    predictor.initialize_from_trained_model_folder(a.model, use_folds=folds, checkpoint_name="checkpoint_final.pth")
    t["load"] = time.perf_counter() - t0
    pm, cm, dsj = predictor.plans_manager, predictor.configuration_manager, predictor.dataset_json
    rw = pm.image_reader_writer_class()

    t0 = time.perf_counter()
    data, props = rw.read_images([a.input])
    t["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pre = cm.preprocessor_class(verbose=False)
    pdata, _, props = pre.run_case_npy(data, None, props, pm, cm, dsj)
    t["preprocess"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(pdata)).cpu()
    t["network"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    seg = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, pm, cm, predictor.label_manager, props, return_probabilities=False, num_threads_torch=a.threads)
    t["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rw.write_seg(seg, a.output, props)
    t["write"] = time.perf_counter() - t0

    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
    shape = [max(s, p) for s, p in zip(pdata.shape[1:], cm.patch_size)]
    steps = compute_steps_for_sliding_window(shape, cm.patch_size, a.step_size)
    tiles = 1
    for s in steps:
        tiles *= len(s)
    passes = 1 if a.disable_tta else 1 + (2 ** len(predictor.allowed_mirroring_axes) - 1)
    print(json.dumps({
        "timings_ms": {k: round(v * 1e3, 3) for k, v in t.items()},
        "tiles_per_fold": tiles,
        "passes_per_tile": passes,
        "folds": len(folds),
        "process_ms": round((time.perf_counter() - START) * 1e3, 3),
    }))


if __name__ == "__main__":
    sys.exit(main())
