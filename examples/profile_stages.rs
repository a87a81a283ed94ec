//! Best-of-10 times of every stage around the network on one case, for profiling the CPU-side
//! work without waiting for the network (the logits are synthetic):
//! `cargo run --release --example profile_stages -- MODEL_DIR IMAGE.nii.gz`
//! The side-by-side comparison with nnU-Net is `cargo xtask bench`.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nnunet_rt::folder::ModelFolder;
use nnunet_rt::preprocess::{crop, normalize};
use nnunet_rt::resample;
use nnunet_rt::{export, io, preprocess};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let folder = ModelFolder::open(&PathBuf::from(&args[1]), None).unwrap();
    let plan = &folder.plan;
    // With a third argument, load the model into ONNX Runtime first (as the CLI does), to see
    // what an idle runtime costs the stages around it.
    let _model = args.get(3).map(|_| nnunet_rt::Model::load(&args[1], &Default::default()).unwrap());
    let mut best = vec![Duration::MAX; 8];
    let names = ["read", "box", "crop", "normalize", "resample", "preprocess", "resample_logits", "export"];
    let mut first = vec![Duration::ZERO; 8];
    for iteration in 0..10 {
        let mut t = Instant::now();
        let mut lap = |i: usize, best: &mut Vec<Duration>| {
            best[i] = best[i].min(t.elapsed());
            if iteration == 0 {
                first[i] = t.elapsed();
            }
            t = Instant::now();
        };
        let image = io::nifti::read_image(&PathBuf::from(&args[2])).unwrap();
        lap(0, &mut best);
        let view = image.volume.view().unwrap();
        let tf = plan.transpose_forward;
        let (bbox, _) = crop::nonzero_box(&view, tf, false);
        lap(1, &mut best);
        let cropped = crop::crop_transposed(&view, tf, &bbox).unwrap();
        lap(2, &mut best);
        let mut channel = cropped.index_axis(ndarray::Axis(0), 0).to_owned();
        normalize::normalize_channel(channel.as_slice_mut().unwrap(), &plan.normalization[0], None).unwrap();
        lap(3, &mut best);
        let s = channel.shape().to_vec();
        let sp = view.geometry().spacing;
        let spacing = [sp[2], sp[1], sp[0]];
        let shape = [s[0], s[1], s[2]];
        let new_shape = resample::compute_new_shape(shape, spacing, plan.spacing);
        let r = resample::resample_channel(
            channel.as_slice().unwrap(),
            shape,
            new_shape,
            spacing,
            plan.spacing,
            &plan.resample_data,
        );
        lap(4, &mut best);
        let pre = preprocess::preprocess(&view, plan).unwrap();
        lap(5, &mut best);
        let classes = plan.num_classes();
        let s = pre.data.shape();
        let logits = ndarray::Array4::<half::f16>::from_shape_fn((classes, s[1], s[2], s[3]), |(c, z, y, x)| {
            half::f16::from_f32(((c * 7 + z * 3 + y + x * 2) % 11) as f32 * 0.3 - 1.0)
        });
        lap(7, &mut vec![Duration::MAX; 8]);
        let rl = export::resample_logits(&logits, &pre, plan).unwrap();
        lap(6, &mut best);
        let e = export::export(&logits, &pre, plan, false).unwrap();
        lap(7, &mut best);
        drop(lap);
        assert!(r.len() > 0 && rl.len() > 0 && e.labels.len() > 0);
    }
    println!("{:>16}  {:>9}  {:>9}", "stage", "first", "best");
    for ((n, b), f) in names.iter().zip(&best).zip(&first) {
        println!("{n:>16}  {:>6.2} ms  {:>6.2} ms", f.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3);
    }
}
