//! The bundled demo, as `cargo xtask demo` runs it (both folds, mirroring, nnU-Net's defaults):
//! nnU-Net's segmentation (demo/README.md) and the subtype the lesion was drawn as.

mod common;

use std::path::Path;

use nnunet_rt::classify::Weighting;
use nnunet_rt::io::nifti;
use nnunet_rt::{export, preprocess, ClassificationPolicy, LoadOptions, Logits, Model, PredictOptions};

#[test]
fn the_demo_segments_like_nnunet_and_answers_the_drawn_subtype() {
    if !common::ort_available() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::load(root.join("demo/model"), &LoadOptions::default()).unwrap();
    let image = nifti::read_image(&root.join("demo/ct.nii.gz")).unwrap();
    let pre = preprocess::preprocess(&image.volume.view().unwrap(), model.plan()).unwrap();
    let case = model.predict_logits(&pre, &PredictOptions::default(), &mut |_| Ok(())).unwrap();
    let Logits::Half(logits) = &case.logits else { panic!("float16 accumulation is the default") };
    let labels = export::export(logits, &pre, model.plan(), false).unwrap().labels;
    // nnU-Net 2.8.1 itself, same folds and settings: 1,579 pancreas and 95 lesion voxels.
    assert_eq!(labels.counts(3)[1..], [1579, 95], "demo segmentation differs from nnU-Net's");

    let answer = model.classify(&case.evidence, ClassificationPolicy::default()).unwrap();
    eprintln!("lesion-voxels: {:?} {:?}", answer.probabilities, answer.weighting);
    assert_eq!(answer.class_names[answer.predicted], "subtype0", "the lesion was drawn as subtype0: {answer:?}");
    assert!(answer.weighting.iter().all(|w| *w == Weighting::EvidenceLabels), "{answer:?}");

    // The soft policy dilutes here, as demo/README.md says: background tiles outweigh the lesion.
    let soft = model.classify(&case.evidence, ClassificationPolicy::LesionWeighted).unwrap();
    eprintln!("lesion-weighted: {:?}", soft.probabilities);
    assert_eq!(soft.class_names[soft.predicted], "subtype2", "{soft:?}");
}
