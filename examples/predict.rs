//! Segments one image with an nnU-Net model through the safe Rust API.
//!
//! ```text
//! cargo run --example predict -- MODEL IMAGE.nii[.gz] [-f FOLD]... [--disable-tta]
//! ```
//!
//! MODEL is a model folder, or a bundle file (`nnunet-rt bundle`) read into memory and loaded
//! from there, as a host that decrypts its models would do.
//!
//! Loads the model, reads the NIfTI image, predicts it with progress on stderr, and prints to
//! stdout the voxel count of each label and, for a model with a classification head, the
//! predicted class and its probability — the same lines as `examples/c/predict.c` and
//! `examples/cpp/predict.cpp`:
//!
//! ```text
//! label background 26352
//! label pancreas 1192
//! label lesion 56
//! class subtype2 0.540775
//! ```

use std::process::ExitCode;

use nnunet_rt::io::nifti;
use nnunet_rt::{LoadOptions, Model, PredictOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} MODEL_DIR_OR_BUNDLE IMAGE.nii [-f FOLD]... [--disable-tta]", args[0]);
        return ExitCode::from(2);
    }
    let mut load = LoadOptions::default();
    let mut options = PredictOptions::default();
    let mut rest = args[3..].iter();
    while let Some(arg) = rest.next() {
        match (arg.as_str(), rest.clone().next()) {
            ("--disable-tta", _) => options.mirroring = false,
            ("-f", Some(fold)) => {
                load.folds.get_or_insert_with(Vec::new).push(fold.clone());
                rest.next();
            }
            _ => {
                eprintln!("predict: unexpected argument {arg}");
                return ExitCode::from(2);
            }
        }
    }
    match run(&args[1], &args[2], &load, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("predict: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(model_dir: &str, image: &str, load: &LoadOptions, options: &PredictOptions) -> nnunet_rt::Result<()> {
    let model = if model_dir.ends_with(".nnrt") {
        let bytes = std::fs::read(model_dir).map_err(|e| nnunet_rt::Error::io("cannot read", model_dir.as_ref(), e))?;
        Model::load_bundle(&bytes, load)?
    } else {
        Model::load(model_dir, load)?
    };
    let image = nifti::read_image(image.as_ref())?;
    let prediction = model.predict(&image.volume.view()?, options, &mut |stage, fraction| {
        eprintln!("{:<10} {:>3.0}%", stage.name(), fraction * 100.0);
        true // false would cancel
    })?;
    let counts = prediction.labels.counts(prediction.label_names.len());
    for (name, count) in prediction.label_names.iter().zip(counts) {
        println!("label {name} {count}");
    }
    if let Some(c) = &prediction.classification {
        println!("class {} {:.6}", c.class_names[c.predicted], c.probabilities[c.predicted]);
    }
    Ok(())
}
