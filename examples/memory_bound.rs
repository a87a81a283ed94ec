//! Peak memory of everything around the network on a large CT, and the library's estimate of it.
//!
//! `cargo run --release --example memory_bound -- MODEL_DIR [SLICES]` predicts a synthetic
//! 512 x 512 x SLICES int16 CT (default 1000) at the model's own spacing with a stand-in network
//! (logits computed from the input, no ONNX Runtime), so the sliding window, accumulation and
//! export run at full size in seconds. Run it under `/usr/bin/time -v` to read the peak RSS;
//! the real network adds its own working set (ONNX Runtime's, per patch) on top.
use std::path::PathBuf;
use std::time::Instant;

use nnunet_rt::backend::{TileNetwork, TileOutputs};
use nnunet_rt::folder::ModelFolder;
use nnunet_rt::{Geometry, Model, PredictOptions, Result, VolumeView, VoxelData};

/// Logits `(input, -input, 0, ...)`: cheap, deterministic, and different per voxel.
struct StandIn {
    tile_len: usize,
    classes: usize,
    input: Vec<f32>,
    seg: Vec<f32>,
}

impl TileNetwork for StandIn {
    fn input(&mut self, batch: usize) -> Result<&mut [f32]> {
        self.input.resize(batch * self.tile_len, 0.0);
        Ok(&mut self.input)
    }

    fn run(&mut self) -> Result<TileOutputs<'_>> {
        let batch = self.input.len() / self.tile_len;
        self.seg.resize(batch * self.classes * self.tile_len, 0.0);
        for (tile, out) in self.input.chunks(self.tile_len).zip(self.seg.chunks_mut(self.classes * self.tile_len)) {
            for (c, block) in out.chunks_mut(self.tile_len).enumerate() {
                let sign = [1.0, -1.0].get(c).copied().unwrap_or(0.0);
                block.iter_mut().zip(tile).for_each(|(o, &v)| *o = sign * v);
            }
        }
        Ok(TileOutputs { segmentation: &self.seg, classification: &[] })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).expect("usage: memory_bound MODEL_DIR [SLICES]"));
    let slices: usize = args.get(2).map_or(1000, |s| s.parse().expect("SLICES is a number"));
    let folder = ModelFolder::open(&dir, None).expect("model folder");
    let plan = folder.plan.clone();
    let (patch, classes) = (plan.patch_size, plan.num_classes());
    let folds = folder.folds.len();
    let networks: Vec<Box<dyn TileNetwork + Send>> = (0..folds)
        .map(|_| {
            Box::new(StandIn { tile_len: patch.iter().product(), classes, input: Vec::new(), seg: Vec::new() })
                as Box<dyn TileNetwork + Send>
        })
        .collect();
    let model = Model::with_networks(folder, networks);

    // Soft tissue with a brighter disc in every slice; air outside a body-shaped ellipse.
    let dims = [512usize, 512, slices];
    let data: Vec<i16> = (0..dims.iter().product::<usize>())
        .map(|i| {
            let (x, y) = ((i % 512) as f64 - 256.0, ((i / 512) % 512) as f64 - 256.0);
            match (x * x / 220.0f64.powi(2) + y * y / 160.0f64.powi(2), x * x + y * y) {
                (e, _) if e > 1.0 => -1000,
                (_, r2) if r2 < 900.0 => 150,
                _ => 40,
            }
        })
        .collect();
    let spacing = [plan.spacing[2], plan.spacing[1], plan.spacing[0]];
    let view = VolumeView::new(VoxelData::I16(&data), dims, 1, Geometry::with_spacing(spacing)).expect("volume");
    let options = PredictOptions { mirroring: false, ..PredictOptions::default() };
    let estimate = model.estimate_peak_bytes(&view, &options);
    let started = Instant::now();
    let prediction = model.predict(&view, &options, &mut |_, _| true).expect("prediction");
    println!(
        "{}x{}x{} int16 CT ({} MiB as given), {} tiles x {} fold(s), TTA off: {:.1} s; estimated peak {} MiB \
         besides the input and the network",
        dims[0],
        dims[1],
        dims[2],
        data.len() * 2 >> 20,
        prediction.tiles,
        folds,
        started.elapsed().as_secs_f64(),
        estimate >> 20
    );
}
