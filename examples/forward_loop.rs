//! Times network forwards alone, warm, through the same sessions `Model::load` builds.
//!
//! ```text
//! cargo run --release --example forward_loop -- MODEL_DIR [DEVICE] [NETWORK_PRECISION] [BATCH] [RUNS] [THREADS]
//! cargo run --release --example forward_loop -- target/bench/models/resenc_m openvino f32 1 3 2
//! ```
//!
//! Loads fold 0 of MODEL_DIR on DEVICE (`auto`, `cpu`, `openvino`, `cuda:N`; default `auto`) at
//! NETWORK_PRECISION (`f32` or `bf16`), then runs RUNS batches of BATCH tiles (default 1 and 3)
//! with THREADS threads (default: the provider's) and prints the session creation time, each
//! run's time and the time per tile. BATCH 8 is what one tile with mirroring passes as one batch.

use std::time::Instant;

use nnunet_rt::backend::ort::{OnnxModel, OrtNetwork, SessionSettings};
use nnunet_rt::backend::runtime;
use nnunet_rt::backend::TileNetwork;
use nnunet_rt::folder::ModelFolder;
use nnunet_rt::{Device, NetworkPrecision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: forward_loop MODEL_DIR [DEVICE] [NETWORK_PRECISION] [BATCH] [RUNS] [THREADS]".into());
    };
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let device: Device = arg(1, "auto").parse()?;
    let precision: NetworkPrecision = arg(2, "f32").parse()?;
    let batch: usize = arg(3, "1").parse()?;
    let runs: usize = arg(4, "3").parse()?;
    let threads: Option<usize> = args.get(5).map(|t| t.parse()).transpose()?;

    let runtime = runtime::runtime(None)?;
    let resolved = runtime.resolve(device, precision, None)?;
    let folder = ModelFolder::open(dir.as_ref(), Some(&["0".to_string()]))?;
    let plan = &folder.plan;
    let tile = plan.network_input_shape();
    let settings = SessionSettings {
        provider: resolved.provider,
        precision,
        intra_threads: threads,
        allow_tf32: false,
        openvino_cache_dir: None,
    };
    let fold = &folder.folds[0];
    let start = Instant::now();
    let onnx = OnnxModel::File(&fold.onnx_path);
    let mut network = OrtNetwork::load(runtime, onnx, &fold.metadata, tile.clone(), plan.num_classes(), &settings)?;
    println!(
        "{} {precision}, batch {batch}, tile {tile:?}: session {:.2} s",
        resolved.provider.ort_name(),
        start.elapsed().as_secs_f64()
    );
    for run in 0..runs {
        let input = network.input(batch)?;
        for (i, v) in input.iter_mut().enumerate() {
            *v = ((i as f32 * 0.013).sin() * 1.5) + ((i * 2654435761 % 1000) as f32 / 1000.0 - 0.5);
        }
        let start = Instant::now();
        network.run()?;
        let seconds = start.elapsed().as_secs_f64();
        println!("run {}: {seconds:.3} s ({:.3} s per tile)", run + 1, seconds / batch as f64);
    }
    Ok(())
}
