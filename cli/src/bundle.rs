//! `nnunet-rt bundle`: one file holding a model folder, for hosts that load models from memory.

use std::path::PathBuf;

use nnunet_rt::{LoadOptions, Model, Result};

#[derive(clap::Args)]
pub struct BundleArgs {
    /// nnU-Net v2 model folder (plans.json, dataset.json, fold_N/model.onnx)
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// The bundle file to write (e.g. model.nnrt)
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Folds to include, e.g. `-f 0 1 2` (default: every exported fold)
    #[arg(short = 'f', long = "folds", num_args = 1..)]
    folds: Vec<String>,
    /// A cascade's previous-stage model folder (default: nnU-Net's sibling folder); it goes into
    /// the bundle too
    #[arg(long = "previous-stage-model")]
    previous_stage_model: Option<PathBuf>,
}

pub fn run(args: BundleArgs) -> Result<()> {
    let options = LoadOptions {
        folds: (!args.folds.is_empty()).then(|| args.folds.clone()),
        previous_stage_model: args.previous_stage_model.clone(),
        ..LoadOptions::default()
    };
    Model::write_bundle(&args.model, &options, &args.output)?;
    let size = std::fs::metadata(&args.output).map(|m| m.len()).unwrap_or(0);
    println!("wrote {} ({} MiB) from {}", args.output.display(), size.div_ceil(1 << 20), args.model.display());
    Ok(())
}
