//! OpenVINO under ONNX Runtime: the device vocabulary, which provider and precision actually ran,
//! and parity of both precisions against nnU-Net's own segmentations (the fixtures).
//!
//! Needs the plugin (`cargo xtask ort` fetches it): without it these tests fail, unless
//! `NNUNET_RT_ALLOW_SKIP=1`.

mod common;

use std::path::PathBuf;

use nnunet_rt::backend::ort::{OnnxModel, OrtNetwork, SessionSettings};
use nnunet_rt::backend::runtime;
use nnunet_rt::backend::TileNetwork;
use nnunet_rt::folder::ModelFolder;
use nnunet_rt::io::nifti;
use nnunet_rt::{Device, ErrorKind, LoadOptions, Model, NetworkPrecision, PredictOptions, Provider};

fn model_dir(name: &str) -> PathBuf {
    common::fixtures().join("models").join(name)
}

/// One tile of the fixture model through one provider at one precision: the segmentation logits.
fn one_tile(provider: Provider, precision: NetworkPrecision) -> Vec<f32> {
    let runtime = runtime::runtime(None).unwrap();
    let folder = ModelFolder::open(&model_dir("multitask_ct"), Some(&["0".to_string()])).unwrap();
    let plan = &folder.plan;
    let tile = plan.network_input_shape();
    let settings =
        SessionSettings { provider, precision, intra_threads: Some(2), allow_tf32: false, openvino_cache_dir: None };
    let fold = &folder.folds[0];
    let mut network = OrtNetwork::load(
        runtime,
        OnnxModel::File(&fold.onnx_path),
        &fold.metadata,
        tile,
        plan.num_classes(),
        &settings,
    )
    .unwrap();
    // A deterministic, CT-like normalised input: smooth structure plus texture.
    let input = network.input(1).unwrap();
    for (i, v) in input.iter_mut().enumerate() {
        *v = ((i as f32 * 0.013).sin() * 1.5) + ((i * 2654435761 % 1000) as f32 / 1000.0 - 0.5);
    }
    network.run().unwrap().segmentation.to_vec()
}

/// Share of values that are exactly representable in bfloat16 (low 16 bits zero): about 2^-16
/// for float32 arithmetic, 1 when the network's last layer computed in bfloat16.
fn bf16_share(values: &[f32]) -> f64 {
    values.iter().filter(|v| v.to_bits() & 0xffff == 0).count() as f64 / values.len() as f64
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_precision_that_ran_is_the_precision_asked_for() {
    if !common::openvino_available() {
        return;
    }
    // OpenVINO first: once its plugin is registered, a session that named no device ran on it at
    // its default (bfloat16) precision. The CPU session below must still be ONNX Runtime's own.
    let openvino_bf16 = one_tile(Provider::OpenVino, NetworkPrecision::Bf16);
    let openvino_f32 = one_tile(Provider::OpenVino, NetworkPrecision::F32);
    let cpu = one_tile(Provider::Cpu, NetworkPrecision::F32);
    let (share_cpu, share_f32, share_bf16) = (bf16_share(&cpu), bf16_share(&openvino_f32), bf16_share(&openvino_bf16));
    let (diff_f32, diff_bf16) = (max_abs_diff(&openvino_f32, &cpu), max_abs_diff(&openvino_bf16, &cpu));
    eprintln!(
        "bfloat16-exact share: cpu {share_cpu:.2e}, openvino f32 {share_f32:.2e}, openvino bf16 {share_bf16:.4}; \
         max |diff| to the CPU provider: f32 {diff_f32:.2e}, bf16 {diff_bf16:.2e}"
    );
    assert!(share_cpu < 0.01, "the CPU provider's logits look bfloat16 ({share_cpu}): it did not run in float32");
    assert!(share_f32 < 0.01, "OpenVINO f32 logits look bfloat16 ({share_f32}): its default precision ran");
    assert!(share_bf16 > 0.99, "OpenVINO bf16 logits are not bfloat16 values ({share_bf16}): bf16 did not run");
    assert!(diff_f32 < 1e-3, "OpenVINO f32 differs from the CPU provider by {diff_f32}");
    assert!(diff_bf16 > 1e-3, "OpenVINO bf16 equals the CPU provider to {diff_bf16}: it cannot have run in bf16");
}

#[test]
fn auto_takes_openvino_and_reports_what_ran() {
    if !common::openvino_available() {
        return;
    }
    let model = Model::load(model_dir("resenc_ct"), &LoadOptions::default()).unwrap();
    let info = model.runtime_info().unwrap();
    assert_eq!((info.device_requested.as_str(), info.device.as_str()), ("auto", "openvino"));
    assert_eq!(info.execution_provider, "OpenVINOExecutionProvider");
    assert_eq!(info.network_precision, "f32");
    assert!(info.auto_fallback_reason.is_none());
    let openvino = info.openvino.as_ref().unwrap();
    assert!(openvino.path.is_file() && !openvino.version.is_empty(), "{openvino:?}");
    assert!(info.onnxruntime_library.is_file() && info.onnxruntime_version.starts_with("1."), "{info:?}");

    // The compiled-network cache is written where asked.
    let cache = std::env::temp_dir().join(format!("nnunet-rt-openvino-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let options =
        LoadOptions { openvino_cache_dir: Some(cache.clone()), intra_threads: Some(1), ..LoadOptions::default() };
    drop(Model::load(model_dir("resenc_ct"), &options).unwrap());
    let cached = std::fs::read_dir(&cache).map(|entries| entries.count()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&cache);
    assert!(cached > 0, "OpenVINO wrote nothing into its cache folder {}", cache.display());

    let cpu =
        Model::load(model_dir("resenc_ct"), &LoadOptions { device: Device::Cpu, ..LoadOptions::default() }).unwrap();
    let info = cpu.runtime_info().unwrap();
    assert_eq!((info.device.as_str(), info.execution_provider.as_str()), ("cpu", "CPUExecutionProvider"));
    assert!(info.openvino.is_none());
}

#[test]
fn bf16_is_refused_where_it_cannot_run() {
    if !common::openvino_available() {
        return;
    }
    let options =
        LoadOptions { device: Device::Cpu, network_precision: NetworkPrecision::Bf16, ..LoadOptions::default() };
    let error = Model::load(model_dir("resenc_ct"), &options).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error}");
    assert!(error.message().contains("only on OpenVINO"), "{error}");
    let options =
        LoadOptions { device: Device::Cuda(0), network_precision: NetworkPrecision::Bf16, ..LoadOptions::default() };
    assert_eq!(Model::load(model_dir("resenc_ct"), &options).unwrap_err().kind(), ErrorKind::InvalidArgument);
    // An explicit plugin path that is not the loaded plugin is an error, never a silent fallback.
    let options = LoadOptions { openvino_library: Some("/nonexistent/plugin.so".into()), ..LoadOptions::default() };
    let error = Model::load(model_dir("resenc_ct"), &options).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RuntimeUnavailable, "{error}");
    assert!(error.message().contains("/nonexistent/plugin.so"), "{error}");
}

struct CaseResult {
    name: String,
    labels: Vec<u32>,
    reference: Vec<u32>,
    classes: u32,
}

/// Every fixture case predicted end to end on `device` at `precision`, with nnU-Net's labels.
fn predict_fixtures(device: Device, precision: NetworkPrecision) -> Vec<CaseResult> {
    let root = common::fixtures().join("cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    assert!(dirs.len() >= 13, "expected the thirteen reference cases, found {}", dirs.len());
    dirs.iter()
        .map(|dir| {
            let meta = common::read_json(&dir.join("reference/case.json"));
            let options =
                LoadOptions { device, network_precision: precision, ..common::case_load_options(&meta, "models") };
            let model = Model::load(model_dir(meta["model"].as_str().unwrap()), &options).unwrap();
            let mut inputs: Vec<PathBuf> =
                std::fs::read_dir(dir.join("input")).unwrap().map(|e| e.unwrap().path()).collect();
            inputs.sort();
            let image = nifti::read_channels(&inputs).unwrap();
            let predict = PredictOptions {
                step_size: meta["step_size"].as_f64().unwrap(),
                mirroring: meta["use_mirroring"].as_bool().unwrap(),
                ..PredictOptions::default()
            };
            let prediction = model.predict(&image.volume.view().unwrap(), &predict, &mut |_, _| true).unwrap();
            let reference = nifti::read_image(&dir.join("reference/seg.nii.gz")).unwrap();
            CaseResult {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                labels: (0..prediction.labels.len()).map(|i| prediction.labels.get(i)).collect(),
                reference: reference.volume.data.iter().map(|&v| v as u32).collect(),
                classes: model.plan().num_classes() as u32,
            }
        })
        .collect()
}

fn differing(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[test]
fn openvino_f32_gives_the_cpu_providers_labels_and_nnunets() {
    if !common::openvino_available() {
        return;
    }
    let cpu = predict_fixtures(Device::Cpu, NetworkPrecision::F32);
    let openvino = predict_fixtures(Device::OpenVino, NetworkPrecision::F32);
    for (c, o) in cpu.iter().zip(&openvino) {
        let dices: Vec<f64> = (1..o.classes).map(|l| common::dice(&o.labels, &o.reference, l)).collect();
        eprintln!(
            "{}: OpenVINO f32 vs ONNX Runtime CPU {} voxels differ, vs nnU-Net {} of {}; Dice vs nnU-Net {:?}",
            o.name,
            differing(&o.labels, &c.labels),
            differing(&o.labels, &o.reference),
            o.labels.len(),
            dices.iter().map(|d| format!("{d:.5}")).collect::<Vec<_>>()
        );
        assert_eq!(differing(&o.labels, &c.labels), 0, "{}: OpenVINO f32 and the CPU provider disagree", o.name);
        // README: both give nnU-Net's labels on every fixture, voxel for voxel.
        assert_eq!(differing(&o.labels, &o.reference), 0, "{}: OpenVINO f32 differs from nnU-Net", o.name);
        for (l, d) in dices.iter().enumerate() {
            assert!(*d >= 0.999, "{}: label {} Dice {d} < 0.999 against nnU-Net", o.name, l + 1);
        }
    }
}

#[test]
fn openvino_bf16_stays_within_dice_0_99_of_nnunet() {
    if !common::openvino_available() {
        return;
    }
    let runtime = runtime::runtime(None).unwrap();
    if !runtime.openvino(None).unwrap().has_bf16() {
        // Not a skip: on such a CPU the contract is the refusal, checked here instead.
        let options = LoadOptions { network_precision: NetworkPrecision::Bf16, ..LoadOptions::default() };
        let error = Model::load(model_dir("resenc_ct"), &options).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error}");
        eprintln!("this CPU has no native bfloat16: bf16 refused with {error}");
        return;
    }
    for case in predict_fixtures(Device::OpenVino, NetworkPrecision::Bf16) {
        let dices: Vec<f64> = (1..case.classes).map(|l| common::dice(&case.labels, &case.reference, l)).collect();
        eprintln!(
            "{}: OpenVINO bf16 vs nnU-Net {} of {} voxels differ; Dice {:?}",
            case.name,
            differing(&case.labels, &case.reference),
            case.labels.len(),
            dices.iter().map(|d| format!("{d:.5}")).collect::<Vec<_>>()
        );
        for (l, d) in dices.iter().enumerate() {
            assert!(*d >= 0.99, "{}: label {} Dice {d} < 0.99 against nnU-Net in bf16", case.name, l + 1);
        }
    }
}
