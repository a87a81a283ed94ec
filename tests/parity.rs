//! Stage-by-stage parity with nnU-Net 2.8.1's CPU outputs, stored as fixtures by
//! `tools/make_fixtures.py` (see tests/fixtures/README.md).
//!
//! Per case: the preprocessed array, the float16 logits, the exported segmentation from the
//! reference logits (deterministic, must be identical), the end-to-end segmentation (ONNX
//! Runtime's float noise may flip near-ties: the differing voxels are counted and reported, and
//! every label's Dice must be >= 0.999), probabilities, and the classification head's answer.

mod common;

use std::path::{Path, PathBuf};

use half::f16;
use ndarray::Array4;
use nnunet_rt::folder::ModelFolder;
use nnunet_rt::io::{nifti, npy};
use nnunet_rt::preprocess::{self, Preprocessed};
use nnunet_rt::{export, ClassificationPolicy, Labels, LoadOptions, Logits, Model, PredictOptions};
use serde_json::Value;

struct Case {
    name: String,
    dir: PathBuf,
    meta: Value,
}

impl Case {
    fn reference(&self, file: &str) -> PathBuf {
        self.dir.join("reference").join(file)
    }

    fn inputs(&self) -> Vec<PathBuf> {
        let mut inputs: Vec<PathBuf> =
            std::fs::read_dir(self.dir.join("input")).unwrap().map(|e| e.unwrap().path()).collect();
        inputs.sort();
        inputs
    }

    fn model_dir(&self) -> PathBuf {
        common::fixtures().join("models").join(self.meta["model"].as_str().unwrap())
    }

    fn folds(&self) -> Vec<String> {
        self.meta["folds"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
    }

    /// A cascade case's previous stage: its model folder and folds.
    fn previous_stage(&self) -> Option<(PathBuf, Vec<String>)> {
        let previous = self.meta.get("previous_stage")?;
        let dir = common::fixtures().join("models").join(previous["model"].as_str().unwrap());
        let folds = previous["folds"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
        Some((dir, folds))
    }

    fn load_options(&self) -> LoadOptions {
        common::case_load_options(&self.meta, "models")
    }

    /// nnU-Net's own previous-stage segmentation of a cascade case, as the preprocessing input.
    fn reference_previous_labels(&self) -> Option<Labels> {
        self.previous_stage()?;
        let seg = nifti::read_image(&self.reference("lowres_seg.nii.gz")).unwrap();
        Some(Labels::U8(seg.volume.data.iter().map(|&v| v as u8).collect()))
    }

    /// Preprocessing as nnU-Net ran it for this case (with its previous stage's labels, if any).
    fn preprocess(&self, view: &nnunet_rt::VolumeView<'_>, plan: &nnunet_rt::folder::Plan) -> Preprocessed {
        preprocess::preprocess_with_previous_stage(view, plan, self.reference_previous_labels().as_ref()).unwrap()
    }

    fn options(&self) -> PredictOptions {
        PredictOptions {
            step_size: self.meta["step_size"].as_f64().unwrap(),
            mirroring: self.meta["use_mirroring"].as_bool().unwrap(),
            // The fixtures' reference classification was computed for this policy.
            classification_policy: ClassificationPolicy::LesionWeighted,
            ..PredictOptions::default()
        }
    }
}

fn cases() -> Vec<Case> {
    let root = common::fixtures().join("cases");
    let mut cases: Vec<Case> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference/case.json").is_file())
        .map(|dir| Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            meta: common::read_json(&dir.join("reference/case.json")),
            dir,
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.len() >= 13, "expected the thirteen reference cases, found {}", cases.len());
    cases
}

fn load_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let array = npy::read(path).unwrap();
    (array.shape.clone(), array.to_f32().unwrap())
}

fn reference_preprocessed(case: &Case, ours: &Preprocessed) -> Preprocessed {
    let (shape, data) = load_f32(&case.reference("preprocessed.npy"));
    let data = Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), data).unwrap();
    Preprocessed { data, ..ours.clone() }
}

/// Summed Gaussian weight of every voxel of the (unpadded) preprocessed grid, in float32.
fn summed_weights(plan: &nnunet_rt::folder::Plan, shape: &[usize], step: f64) -> Vec<f32> {
    use nnunet_rt::window::{gaussian, TileGrid};
    let shape = [shape[1], shape[2], shape[3]];
    let patch = plan.patch_size;
    let grid = TileGrid::for_network(shape, patch, step, plan.network_dims).unwrap();
    let g = gaussian::gaussian_map(patch);
    let mut w = ndarray::Array3::<f32>::zeros(grid.padded);
    for [a, b, c] in grid.tiles() {
        let mut tile = w.slice_mut(ndarray::s![a..a + patch[0], b..b + patch[1], c..c + patch[2]]);
        tile.iter_mut().zip(&g).for_each(|(t, v)| *t += v.to_f32());
    }
    let [pa, pb, pc] = grid.pad_before;
    w.slice(ndarray::s![pa..pa + shape[0], pb..pb + shape[1], pc..pc + shape[2]]).iter().copied().collect()
}

/// Distance from `v` to the next float16 away from zero.
fn f16_ulp(v: f16) -> f32 {
    let magnitude = f16::from_bits(v.to_bits() & 0x7fff);
    f16::from_bits(magnitude.to_bits() + 1).to_f32() - magnitude.to_f32()
}

fn max_abs_diff(a: impl Iterator<Item = f32>, b: impl Iterator<Item = f32>) -> f32 {
    a.zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn preprocessing_matches_nnunet() {
    for case in cases() {
        let folder = ModelFolder::open(&case.model_dir(), Some(&case.folds())).unwrap();
        let image = nifti::read_channels(&case.inputs()).unwrap();
        let ours = case.preprocess(&image.volume.view().unwrap(), &folder.plan);
        let (shape, reference) = load_f32(&case.reference("preprocessed.npy"));
        assert_eq!(ours.data.shape(), &shape[..], "{}: preprocessed shape", case.name);
        let props = &case.meta["properties"];
        let bbox: Vec<[usize; 2]> = props["bbox_used_for_cropping"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| [b[0].as_u64().unwrap() as usize, b[1].as_u64().unwrap() as usize])
            .collect();
        assert_eq!(ours.bbox.to_vec(), bbox, "{}: crop box", case.name);
        let diff = max_abs_diff(ours.data.iter().copied(), reference.iter().copied());
        let differing = ours.data.iter().zip(&reference).filter(|(a, b)| a != b).count();
        eprintln!(
            "{}: preprocessed max |diff| {diff:e}, {differing} of {} values not bit-identical",
            case.name,
            reference.len()
        );
        // Bit-identical except ZScore statistics, which numpy sums pairwise in float32 (we sum in
        // float64): that moves normalised values by an ulp or so.
        assert!(diff <= 1e-6 * 8.0, "{}: preprocessed arrays differ by {diff}", case.name);
        if !case.name.starts_with("two_channel") {
            assert_eq!(differing, 0, "{}: preprocessing must be bit-identical", case.name);
        }
    }
}

#[test]
fn logits_segmentation_and_probabilities_match_nnunet() {
    if !common::ort_available() {
        return;
    }
    let mut report = Vec::new();
    for case in cases() {
        let options = case.options();
        let model = Model::load(case.model_dir(), &case.load_options()).unwrap();
        let plan = model.plan().clone();
        let image = nifti::read_channels(&case.inputs()).unwrap();
        let view = image.volume.view().unwrap();
        let ours_pre = case.preprocess(&view, &plan);

        // Logits from nnU-Net's own preprocessed array: isolates the network stage.
        let reference_pre = reference_preprocessed(&case, &ours_pre);
        let logits = model.predict_logits(&reference_pre, &options, &mut |_| Ok(())).unwrap();
        let reference_logits = npy::read(&case.reference("logits.npy")).unwrap();
        assert_eq!(logits.logits.shape(), &reference_logits.shape[..], "{}: logits shape", case.name);
        let reference_f16 = reference_logits.to_f16().unwrap();
        // Both sides store float16 logits, rounded five times on the way (weighted sum, weight,
        // division, fold sum, fold mean): network noise far below 1e-3 can push a value across a
        // rounding boundary at each of them. So every value must be within 1e-3 plus five float16
        // ulps of the reference (an ulp is 2^-6 at 16, so confident models' large logits exceed
        // 1e-3 by rounding alone; how many do is reported).
        let Logits::Half(ours) = &logits.logits else { panic!("nnU-Net precision is the default") };
        // Where only tile borders cover a voxel its summed Gaussian weight w is a float16
        // subnormal, and the weighted sum is quantised to 2^-24: one quantum is 2^-24 / w in the
        // logit (nnU-Net's own corner effect), which network noise can flip a few times.
        let weights = summed_weights(&plan, reference_pre.data.shape(), options.step_size);
        let diffs: Vec<(f32, f32)> = ours
            .iter()
            .zip(&reference_f16)
            .enumerate()
            .map(|(i, (a, b))| {
                let w = weights[i % weights.len()];
                ((a.to_f32() - b.to_f32()).abs(), 1e-3 + 5.0 * f16_ulp(*b) + 4.0 * 2f32.powi(-24) / w)
            })
            .collect();
        let logit_diff = diffs.iter().map(|d| d.0).fold(0.0, f32::max);
        let over = diffs.iter().filter(|d| d.0 > 1e-3).count();
        let worst = diffs.iter().map(|(d, bound)| d / bound).fold(0.0, f32::max);
        assert!(worst <= 1.0, "{}: logits differ by up to {logit_diff} (worst at {worst} x its bound)", case.name);

        // Export of nnU-Net's own logits is deterministic arithmetic: it must give nnU-Net's labels exactly.
        let reference_logits = Array4::from_shape_vec(ours.raw_dim(), reference_f16).unwrap();
        let reference_seg: Vec<u32> =
            nifti::read_image(&case.reference("seg.nii.gz")).unwrap().volume.data.iter().map(|&v| v as u32).collect();
        let exported = export::export(&reference_logits, &ours_pre, &plan, false).unwrap();
        let exported_labels: Vec<u32> = (0..exported.labels.len()).map(|i| exported.labels.get(i)).collect();
        let export_mismatch = exported_labels.iter().zip(&reference_seg).filter(|(a, b)| a != b).count();
        assert_eq!(
            export_mismatch, 0,
            "{}: export of the reference logits differs from nnU-Net's segmentation",
            case.name
        );

        if case.reference("probabilities.npy").is_file() {
            let with_probabilities = export::export(&reference_logits, &ours_pre, &plan, true).unwrap();
            let (shape, reference) = load_f32(&case.reference("probabilities.npy"));
            let ours = with_probabilities.probabilities.unwrap();
            assert_eq!(ours.len(), shape.iter().product::<usize>(), "{}: probabilities shape {shape:?}", case.name);
            let diff = max_abs_diff(ours.iter().copied(), reference.iter().copied());
            // Our probabilities equal torch.softmax of our resampled logits to 6e-8, yet nnU-Net's
            // saved probabilities differ from them by up to ~2e-5 at a few voxels although its
            // segmentation from the same logits is reproduced exactly; the cause is not found yet.
            assert!(diff <= 1e-4, "{}: probabilities differ by {diff}", case.name);
        }

        // A cascade's first stage on its own: nnU-Net's previous-stage segmentation exactly.
        if let Some((dir, folds)) = case.previous_stage() {
            let first = Model::load(dir, &LoadOptions { folds: Some(folds), ..LoadOptions::default() }).unwrap();
            let labels = first.predict(&view, &options, &mut |_, _| true).unwrap().labels;
            let expected = case.reference_previous_labels().unwrap();
            let differing = (0..labels.len()).filter(|&i| labels.get(i) != expected.get(i)).count();
            assert_eq!(differing, 0, "{}: the previous stage differs from nnU-Net's in {differing} voxels", case.name);
        }

        // End to end, from the NIfTI file.
        let prediction = model.predict(&view, &options, &mut |_, _| true).unwrap();
        let labels: Vec<u32> = (0..prediction.labels.len()).map(|i| prediction.labels.get(i)).collect();
        let differing = labels.iter().zip(&reference_seg).filter(|(a, b)| a != b).count();
        let dices: Vec<f64> =
            (1..plan.num_classes() as u32).map(|l| common::dice(&labels, &reference_seg, l)).collect();
        report.push(format!(
            "{}: logits max |diff| {logit_diff:.2e} ({over} > 1e-3); {differing} of {} voxels differ end to end; Dice {:?}",
            case.name,
            labels.len(),
            dices.iter().map(|d| format!("{d:.5}")).collect::<Vec<_>>()
        ));
        for (l, d) in dices.iter().enumerate() {
            assert!(*d >= 0.999, "{}: label {} Dice {d} < 0.999 ({differing} voxels differ)", case.name, l + 1);
        }
        // What README.md states for every fixture: not one voxel differs from nnU-Net's.
        assert_eq!(differing, 0, "{}: {differing} voxels differ from nnU-Net's segmentation", case.name);

        if let Some(expected) = case.meta.get("classification").filter(|c| !c.is_null()) {
            let ours = prediction.classification.as_ref().expect("the model has a classification head");
            let expected_p: Vec<f64> =
                expected["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            for (a, b) in ours.probabilities.iter().zip(&expected_p) {
                assert!(
                    (a - b).abs() <= 1e-3,
                    "{}: class probabilities {:?} vs {expected_p:?}",
                    case.name,
                    ours.probabilities
                );
            }
            assert_eq!(
                ours.predicted as u64,
                expected["predicted_class"].as_u64().unwrap(),
                "{}: predicted class",
                case.name
            );
            let mean = model.classify(&logits.evidence, ClassificationPolicy::Mean).unwrap();
            let expected_mean: Vec<f64> =
                expected["mean_policy_probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            for (a, b) in mean.probabilities.iter().zip(&expected_mean) {
                assert!(
                    (a - b).abs() <= 1e-3,
                    "{}: mean-policy probabilities {:?} vs {expected_mean:?}",
                    case.name,
                    mean.probabilities
                );
            }
        }
    }
    eprintln!("parity:\n  {}", report.join("\n  "));
}

#[test]
fn half_precision_reference_is_what_the_fixtures_hold() {
    // Guards the fixture format: nnU-Net returns float16 logits, and the test above relies on it.
    for case in cases() {
        let logits = npy::read(&case.reference("logits.npy")).unwrap();
        assert_eq!(logits.descr, "<f2", "{}", case.name);
        let _: Vec<f16> = logits.to_f16().unwrap();
    }
}
