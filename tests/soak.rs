//! Many predictions in one process: threads sharing one model, threads with a model each, and
//! 200 predictions in a row, on the smallest fixture (resenc_ct fold 0, case `small`, no
//! mirroring: tens of milliseconds a prediction). Every result must equal the first one bit for bit,
//! and the resident memory of the sequential run must stay flat once warm.
//!
//! Sizes: 8 threads x 16 predictions for each threaded test and 200 sequential predictions, so
//! the file runs in well under 2 minutes on 2 cores (about 40 s on a shared 2-core Xeon). The tests take a lock so that the memory
//! measurement sees only its own predictions.

mod common;

use std::sync::Mutex;

use nnunet_rt::io::nifti::{self, NiftiImage};
use nnunet_rt::{LoadOptions, Model, PredictOptions, Prediction};

const THREADS: usize = 8;
const PER_THREAD: usize = 16;
const SEQUENTIAL: usize = 200;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn load() -> Model {
    let dir = common::fixtures().join("models/resenc_ct");
    Model::load(&dir, &LoadOptions { folds: Some(vec!["0".into()]), ..LoadOptions::default() }).unwrap()
}

fn image() -> NiftiImage {
    nifti::read_image(&common::fixtures().join("cases/small/input/small_0000.nii.gz")).unwrap()
}

fn options() -> PredictOptions {
    PredictOptions { mirroring: false, probabilities: true, ..PredictOptions::default() }
}

fn predict(model: &Model, image: &NiftiImage) -> Prediction {
    model.predict(&image.volume.view().unwrap(), &options(), &mut |_, _| true).unwrap()
}

fn assert_same(a: &Prediction, b: &Prediction, what: &str) {
    assert_eq!(a.labels, b.labels, "{what}: labels differ");
    let (pa, pb) = (a.probabilities.as_ref().unwrap(), b.probabilities.as_ref().unwrap());
    assert!(pa.iter().zip(pb).all(|(x, y)| x.to_bits() == y.to_bits()), "{what}: probabilities differ");
}

#[test]
fn threads_sharing_one_model_agree() {
    if !common::ort_available() {
        return;
    }
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (model, image) = (load(), image());
    let reference = predict(&model, &image);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (model, image, reference) = (&model, &image, &reference);
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    assert_same(&predict(model, image), reference, &format!("thread {t}, prediction {i}"));
                }
            });
        }
    });
}

#[test]
fn threads_with_a_model_each_agree() {
    if !common::ort_available() {
        return;
    }
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let image = image();
    let reference = predict(&load(), &image);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (image, reference) = (&image, &reference);
            s.spawn(move || {
                let model = load();
                for i in 0..PER_THREAD {
                    assert_same(&predict(&model, image), reference, &format!("model {t}, prediction {i}"));
                }
            });
        }
    });
}

/// Resident set size of this process in bytes (Linux: /proc/self/statm, second field, pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}

#[test]
fn memory_stays_flat_over_200_predictions() {
    if !common::ort_available() {
        return;
    }
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (model, image) = (load(), image());
    let reference = predict(&model, &image);
    // Warm up: allocator pools, ONNX Runtime's arena and thread pools reach their working size.
    for _ in 0..20 {
        predict(&model, &image);
    }
    let warm = rss_bytes();
    let mut samples = Vec::new();
    for i in 0..SEQUENTIAL {
        assert_same(&predict(&model, &image), &reference, &format!("prediction {i}"));
        if i % 50 == 49 {
            samples.push(rss_bytes());
        }
    }
    let last = *samples.last().unwrap();
    let growth = last as i64 - warm as i64;
    eprintln!(
        "RSS warm {} MiB, then every 50 predictions {:?} MiB: growth {:.2} MiB over {SEQUENTIAL}",
        warm >> 20,
        samples.iter().map(|s| s >> 20).collect::<Vec<_>>(),
        growth as f64 / (1 << 20) as f64
    );
    // Measured: flat to within 0.01 MiB. The bound is generous for allocator noise, yet leaking
    // one probability buffer per call (3 x 8640 float32, 100 KiB) would cross it (20 MiB).
    assert!(growth < 16 << 20, "RSS grew by {} MiB over {SEQUENTIAL} predictions", growth >> 20);
}
