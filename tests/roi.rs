//! ROI focus (opt-in) against the exact sliding window, with a network whose answer is known:
//! a voxel is "pancreas" where its normalised intensity is above a threshold. The volume holds
//! one bright blob, so the first pass finds it and the full pass may skip the tiles far from it.
//! Needs no ONNX Runtime.

mod common;

use nnunet_rt::backend::{TileNetwork, TileOutputs};
use nnunet_rt::folder::ModelFolder;
use nnunet_rt::preprocess::normalize::normalize_channel;
use nnunet_rt::{Geometry, Model, PredictOptions, Result, Stage, VolumeView, VoxelData};

/// Background logit `threshold`, label 1 logit the voxel's own value, label 2 never.
struct Threshold {
    tile_len: usize,
    threshold: f32,
    input: Vec<f32>,
    seg: Vec<f32>,
}

impl TileNetwork for Threshold {
    fn input(&mut self, batch: usize) -> Result<&mut [f32]> {
        self.input.resize(batch * self.tile_len, 0.0);
        Ok(&mut self.input)
    }

    fn run(&mut self) -> Result<TileOutputs<'_>> {
        self.seg.clear();
        for tile in self.input.chunks(self.tile_len) {
            self.seg.extend(std::iter::repeat_n(self.threshold, self.tile_len));
            self.seg.extend_from_slice(tile);
            self.seg.extend(std::iter::repeat_n(-100.0, self.tile_len));
        }
        Ok(TileOutputs { segmentation: &self.seg, classification: &[] })
    }
}

#[test]
fn roi_focus_skips_far_tiles_and_keeps_the_segmentation() {
    let dir = common::fixtures().join("models/resenc_ct");
    let folder = || ModelFolder::open(&dir, Some(&["0".to_string()])).unwrap();
    let plan = folder().plan;
    let patch = plan.patch_size;
    // Halfway between the normalised background and blob intensities.
    let (background, blob) = (-500i16, 400i16);
    let mut levels = [background as f32, blob as f32];
    normalize_channel(&mut levels, &plan.normalization[0], None).unwrap();
    let threshold = (levels[0] + levels[1]) / 2.0;
    let network = || Threshold { tile_len: patch.iter().product(), threshold, input: Vec::new(), seg: Vec::new() };

    // (x, y, z) = (96, 96, 40) at the plan's spacing, so nothing is resampled; blob of radius 5.
    let dims = [96usize, 96, 40];
    let centre = [30.0, 62.0, 12.0];
    let data: Vec<i16> = (0..dims.iter().product::<usize>())
        .map(|i| {
            let (x, y, z) = (i % dims[0], (i / dims[0]) % dims[1], i / (dims[0] * dims[1]));
            let d2 = (x as f64 - centre[0]).powi(2) + (y as f64 - centre[1]).powi(2) + (z as f64 - centre[2]).powi(2);
            if d2 <= 25.0 {
                blob
            } else {
                background
            }
        })
        .collect();
    let spacing = [plan.spacing[2], plan.spacing[1], plan.spacing[0]];
    let view = VolumeView::new(VoxelData::I16(&data), dims, 1, Geometry::with_spacing(spacing)).unwrap();

    let exact_model = Model::with_networks(folder(), vec![Box::new(network())]);
    let roi_model = Model::with_networks(folder(), vec![Box::new(network())]);
    let exact = exact_model.predict(&view, &PredictOptions::default(), &mut |_, _| true).unwrap();
    let options = PredictOptions { roi_focus: true, ..PredictOptions::default() };
    let mut last_progress = 0.0;
    let roi = roi_model
        .predict(&view, &options, &mut |stage, fraction| {
            if stage == Stage::Network {
                assert!(fraction >= last_progress, "network progress went back from {last_progress} to {fraction}");
                assert!(fraction <= 1.0, "network progress {fraction} beyond 1");
                last_progress = fraction;
            }
            true
        })
        .unwrap();

    assert!((last_progress - 1.0).abs() < 1e-9, "network progress ended at {last_progress}");
    let blob_voxels = data.iter().filter(|&&v| v == blob).count();
    assert_eq!(exact.labels.counts(3)[1] as usize, blob_voxels, "the exact pass segments the blob");
    assert_eq!(roi.labels, exact.labels, "ROI focus changed the segmentation");
    assert!(
        roi.network_passes < exact.network_passes,
        "ROI focus passed {} tiles through the network, the exact window {}",
        roi.network_passes,
        exact.network_passes
    );
    println!(
        "ROI focus: {} tile passes (first pass included) instead of {} ({} tiles, mirroring on)",
        roi.network_passes, exact.network_passes, exact.tiles
    );
}
