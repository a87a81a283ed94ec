//! nnU-Net's sliding-window prediction for one fold: pad, tile, run every tile with its mirrored
//! copies, weight by the Gaussian map and accumulate — in float16, rounding where nnU-Net
//! rounds, so the logits agree with nnU-Net's CPU path up to the network's own float noise.

pub mod gaussian;
pub mod mirror;
pub mod roi;
pub mod tiles;

use half::f16;
use ndarray::{s, Array4, ArrayView4};

pub use tiles::TileGrid;

use crate::backend::TileNetwork;
use crate::classify::TileEvidence;
use crate::error::Result;
use crate::resample::Sample;
use half::slice::HalfFloatSliceExt;

/// The element type logits are accumulated and stored in: `f16` reproduces nnU-Net (which
/// accumulates in half precision, rounding after every addition), `f32` is more accurate.
pub trait LogitScalar: Sample + Default + std::fmt::Debug + 'static {
    /// Rounds a float32 value to this type.
    fn from_f32(v: f32) -> Self;
    /// Widens to float32 (exact).
    fn to_f32(self) -> f32;
    /// Widens a row to float32 (`dst.len() == src.len()`), vectorised where the CPU can.
    fn widen_row(src: &[Self], dst: &mut [f32]);
    /// Rounds a float32 row to this type, as [`LogitScalar::from_f32`] does per value.
    fn narrow_row(src: &[f32], dst: &mut [Self]);
}

impl LogitScalar for f16 {
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn widen_row(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn narrow_row(src: &[f32], dst: &mut [Self]) {
        dst.convert_from_f32_slice(src);
    }
}

impl LogitScalar for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn widen_row(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn narrow_row(src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(src);
    }
}

/// Applies `update` to `values` in float32, `wide.len()` values at a time, rounding each result
/// back to the logit type once (what per-value `from_f32(f(to_f32(v)))` gives, vectorised).
/// `update` gets the chunk's index and its widened values.
fn update_in_f32<T: LogitScalar>(values: &mut [T], wide: &mut [f32], mut update: impl FnMut(usize, &mut [f32])) {
    let row = wide.len();
    for (r, chunk) in values.chunks_mut(row).enumerate() {
        let wide = &mut wide[..chunk.len()];
        T::widen_row(chunk, wide);
        update(r, wide);
        T::narrow_row(wide, chunk);
    }
}

/// Settings of one sliding-window run.
#[derive(Debug, Clone)]
pub struct WindowSettings<'a> {
    /// Tile layout.
    pub grid: &'a TileGrid,
    /// Gaussian importance map of the patch (float16).
    pub gaussian: &'a [f16],
    /// Mirror axis sets run after the identity pass (empty: no TTA).
    pub flips: &'a [[bool; 3]],
    /// Number of segmentation classes.
    pub classes: usize,
    /// Whether to collect per-tile classification evidence.
    pub collect_evidence: bool,
    /// Which tiles of `grid` to run (in [`TileGrid::tiles`] order); `None` runs all. Voxels no
    /// run tile covers come out as NaN (0 / 0) for the caller to fill.
    pub selected: Option<&'a [bool]>,
}

/// One fold's result: logits `(classes, z', y', x')` on the unpadded grid.
#[derive(Debug)]
pub struct FoldLogits<T> {
    /// The logits.
    pub logits: Array4<T>,
    /// One entry per tile when evidence was collected.
    pub evidence: Vec<TileEvidence>,
}

/// Reusable buffers of the tile loop, so the loop itself allocates nothing after the first tile.
#[derive(Debug, Default)]
pub struct TileBuffers {
    tile: Vec<f32>,
    head: Vec<f32>,
    flipped: Vec<f32>,
    averaged: Vec<f32>,
    wide: Vec<f32>,
}

/// `data` padded for `grid`: borrowed as it is when no axis needs padding, else a padded copy.
pub fn padded<'a>(data: &'a Array4<f32>, grid: &TileGrid) -> std::borrow::Cow<'a, Array4<f32>> {
    if grid.padded == grid.shape && data.is_standard_layout() {
        std::borrow::Cow::Borrowed(data)
    } else {
        std::borrow::Cow::Owned(pad(data.view(), grid))
    }
}

/// Pads `data` (`(channels, z', y', x')`) with zeros to the grid's padded shape.
pub fn pad(data: ArrayView4<'_, f32>, grid: &TileGrid) -> Array4<f32> {
    let [pz, py, px] = grid.padded;
    let [bz, by, bx] = grid.pad_before;
    let [sz, sy, sx] = grid.shape;
    let mut out = Array4::<f32>::zeros((data.shape()[0], pz, py, px));
    out.slice_mut(s![.., bz..bz + sz, by..by + sy, bx..bx + sx]).assign(&data);
    out
}

/// Runs one fold over the padded input. `after_pass(done, total)` is called after every network
/// pass (each mirrored copy of a tile counts) and may stop the run by returning an error
/// (cancellation), so a cancel is honoured before the next forward starts.
pub fn predict_fold<T: LogitScalar>(
    padded: &Array4<f32>,
    settings: &WindowSettings<'_>,
    network: &mut dyn TileNetwork,
    buffers: &mut TileBuffers,
    after_pass: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<FoldLogits<T>> {
    let grid = settings.grid;
    let channels = padded.shape()[0];
    let classes = settings.classes;
    let patch = grid.patch;
    let patch_voxels: usize = patch.iter().product();
    let passes = 1 + settings.flips.len();
    let [pz, py, px] = grid.padded;
    // The two buffers that grow with the volume: an allocation failure is an error, not an abort.
    let grid_voxels = pz * py * px;
    let accumulator = crate::memory::try_filled(classes * grid_voxels, T::default(), "the logit accumulator")?;
    let mut logits = Array4::from_shape_vec((classes, pz, py, px), accumulator).expect("sizes match");
    let summed = crate::memory::try_filled(grid_voxels, T::default(), "the Gaussian weight accumulator")?;
    let mut weights = ndarray::Array3::from_shape_vec((pz, py, px), summed).expect("sizes match");
    let mut evidence = Vec::new();
    let gaussian: Vec<f32> = settings.gaussian.iter().map(|g| g.to_f32()).collect();

    let runs = |index: usize| settings.selected.is_none_or(|s| s[index]);
    let total = (0..grid.len()).filter(|&i| runs(i)).count() * passes;
    let mut done = 0;
    for (index, origin) in grid.tiles().enumerate() {
        if !runs(index) {
            continue;
        }
        let [oz, oy, ox] = origin;
        // One forward per pass, as nnU-Net does: the tile, then one mirrored copy per flip set.
        // Measured here, a batch of all 8 passes ran slower per tile than 8 single forwards on
        // both providers (ResEncUNet-M: 15.8 vs 10.7 s per pass on ONNX Runtime, 9.7 vs 7.0 s on
        // OpenVINO; BENCHMARKS.md), and batch 1 holds an eighth of the input and output memory.
        let tile_len = channels * patch_voxels;
        let out_len = classes * patch_voxels;
        if !settings.flips.is_empty() {
            buffers.tile.resize(tile_len, 0.0);
            copy_tile(padded, origin, patch, &mut buffers.tile);
            buffers.head.clear();
        }
        // Mirror average in float32: identity first, then each flipped pass flipped back, / passes.
        // Without mirroring the network's output is the average, read in place.
        let averaged: &[f32];
        let head: &[f32];
        if settings.flips.is_empty() {
            copy_tile(padded, origin, patch, network.input(1)?);
            let outputs = network.run()?;
            averaged = &outputs.segmentation[..out_len];
            head = outputs.classification;
        } else {
            network.input(1)?.copy_from_slice(&buffers.tile);
            let outputs = network.run()?;
            buffers.averaged.clear();
            buffers.averaged.extend_from_slice(&outputs.segmentation[..out_len]);
            buffers.head.extend_from_slice(outputs.classification);
            buffers.flipped.resize(out_len, 0.0);
            for flip in settings.flips {
                done += 1;
                after_pass(done, total)?;
                mirror::flip_copy(&buffers.tile, network.input(1)?, channels, patch, *flip);
                let outputs = network.run()?;
                mirror::flip_copy(&outputs.segmentation[..out_len], &mut buffers.flipped, classes, patch, *flip);
                buffers.head.extend_from_slice(outputs.classification);
                for (a, f) in buffers.averaged.iter_mut().zip(&buffers.flipped) {
                    *a += *f;
                }
            }
            let n = passes as f32;
            buffers.averaged.iter_mut().for_each(|a| *a /= n);
            averaged = &buffers.averaged;
            head = &buffers.head;
        }
        if settings.collect_evidence {
            evidence.push(TileEvidence::from_tile(averaged, head, classes, passes));
        }

        // Gaussian weighting and accumulation, rounding once per addition like nnU-Net's
        // in-place adds into half tensors (no rounding at all in float32).
        // Row by row: each (z, y) row of the patch is contiguous in the accumulators.
        let row_len = patch[2];
        buffers.wide.resize(row_len, 0.0);
        for c in 0..classes {
            let averaged = &averaged[c * patch_voxels..(c + 1) * patch_voxels];
            for (r, (z, y)) in patch_rows(patch).enumerate() {
                let mut acc = logits.slice_mut(s![c, oz + z, oy + y, ox..ox + row_len]);
                let acc = acc.as_slice_mut().expect("rows of a standard-layout array are contiguous");
                let (p, g) = (&averaged[r * row_len..][..row_len], &gaussian[r * row_len..][..row_len]);
                update_in_f32(acc, &mut buffers.wide, |_, l| {
                    l.iter_mut().zip(p).zip(g).for_each(|((l, &p), &g)| *l += p * g);
                });
            }
        }
        for (r, (z, y)) in patch_rows(patch).enumerate() {
            let mut acc = weights.slice_mut(s![oz + z, oy + y, ox..ox + row_len]);
            let acc = acc.as_slice_mut().expect("rows of a standard-layout array are contiguous");
            let g = &gaussian[r * row_len..][..row_len];
            update_in_f32(acc, &mut buffers.wide, |_, w| w.iter_mut().zip(g).for_each(|(w, &g)| *w += g));
        }
        done += 1;
        after_pass(done, total)?;
    }

    // Normalise by the accumulated weights and drop the padding.
    buffers.wide.resize(px, 0.0);
    let weights = weights.as_slice().expect("standard layout");
    let mut divisor = vec![0f32; px];
    for mut class_block in logits.outer_iter_mut() {
        let block = class_block.as_slice_mut().expect("standard layout");
        update_in_f32(block, &mut buffers.wide, |r, l| {
            T::widen_row(&weights[r * px..r * px + l.len()], &mut divisor[..l.len()]);
            l.iter_mut().zip(&divisor).for_each(|(l, &w)| *l /= w);
        });
    }
    let [bz, by, bx] = grid.pad_before;
    let [sz, sy, sx] = grid.shape;
    // Unpadded (every axis at least a patch long): the accumulator is the result, no copy.
    let logits = if grid.padded == grid.shape {
        logits
    } else {
        logits.slice(s![.., bz..bz + sz, by..by + sy, bx..bx + sx]).to_owned()
    };
    Ok(FoldLogits { logits, evidence })
}

/// Copies the patch at `origin` of every channel of `padded` into `out`, a row at a time.
fn copy_tile(padded: &Array4<f32>, origin: [usize; 3], patch: [usize; 3], out: &mut [f32]) {
    let [oz, oy, ox] = origin;
    let mut rows = out.chunks_exact_mut(patch[2]);
    for channel in padded.outer_iter() {
        for z in oz..oz + patch[0] {
            for y in oy..oy + patch[1] {
                let row = channel.slice(s![z, y, ox..ox + patch[2]]);
                let dst = rows.next().expect("the batch holds every row of the tile");
                match row.as_slice() {
                    Some(src) => dst.copy_from_slice(src),
                    None => dst.iter_mut().zip(row.iter()).for_each(|(d, s)| *d = *s),
                }
            }
        }
    }
}

/// `(z, y)` of every row of a patch, in memory order.
fn patch_rows(patch: [usize; 3]) -> impl Iterator<Item = (usize, usize)> {
    (0..patch[0]).flat_map(move |z| (0..patch[1]).map(move |y| (z, y)))
}

/// Peak bytes of [`run_folds`] on a case of `channels` x `shape` voxels: the preprocessed array
/// and its padded copy, the running total plus one fold's logits and the weights (`logit_bytes`
/// per value), and the tile buffers (the tile and its network input, one pass's output, flip and
/// average scratch: passes run one at a time).
pub fn working_set_bytes(
    channels: usize,
    classes: usize,
    shape: [usize; 3],
    patch: [usize; 3],
    logit_bytes: u64,
) -> u64 {
    // In f64, cast back saturating (see `preprocess::working_set_bytes`).
    let (channels, classes, logit_bytes) = (channels as f64, classes as f64, logit_bytes as f64);
    let voxels: f64 = shape.iter().map(|&n| n as f64).product();
    let padded: f64 = (0..3).map(|i| shape[i].max(patch[i]) as f64).product();
    let patch_voxels: f64 = patch.iter().map(|&n| n as f64).product();
    let padding = (0..3).any(|i| shape[i] < patch[i]);
    (channels * voxels * 4.0
        + if padding { channels * padded * 4.0 } else { 0.0 }
        + 2.0 * classes * padded * logit_bytes
        + padded * logit_bytes
        + patch_voxels * 4.0 * (2.0 * channels + 3.0 * classes)) as u64
}

/// One case through every fold: what [`run_folds`] needs besides the networks.
#[derive(Debug, Clone)]
pub struct CaseWindow<'a> {
    /// The preprocessed case `(channels, z', y', x')`, not padded.
    pub data: &'a Array4<f32>,
    /// Patch (`[1, Py, Px]` for a 2-D network).
    pub patch: [usize; 3],
    /// 2 or 3 (see [`TileGrid::for_network`]).
    pub network_dims: usize,
    /// Step as a fraction of the patch.
    pub step_size: f64,
    /// Gaussian importance map of the patch.
    pub gaussian: &'a [f16],
    /// Mirror axis sets run after the identity pass.
    pub flips: &'a [[bool; 3]],
    /// Network output channels.
    pub classes: usize,
    /// Whether to collect per-tile classification evidence.
    pub collect_evidence: bool,
    /// Opt-in ROI focus ([`roi`]): a cheap first pass, then only the tiles near its foreground.
    pub roi_focus: bool,
}

/// What running every fold produced: the fold-averaged logits and per-fold tile evidence.
#[derive(Debug)]
pub struct FoldRun<T> {
    /// Fold-averaged logits on the unpadded grid.
    pub logits: Array4<T>,
    /// Per fold, per tile classification evidence (empty without a head).
    pub evidence: Vec<Vec<TileEvidence>>,
    /// Tiles per fold.
    pub tiles: usize,
    /// Network passes per tile.
    pub passes_per_tile: usize,
    /// Tiles through the network over all folds, mirrored copies and ROI's first pass counted.
    pub network_passes: usize,
}

/// The fold ensemble: every network (one per fold, in order) over the case, averaged as nnU-Net
/// does ([`FoldAverage`]), with the ROI focus's two passes when asked. `progress(fraction)` runs
/// after every network pass; the ROI first pass counts as one fold's worth of work.
pub fn run_folds<T: LogitScalar>(
    case: &CaseWindow<'_>,
    networks: &mut [Box<dyn TileNetwork + Send>],
    buffers: &mut TileBuffers,
    progress: &mut dyn FnMut(f64) -> Result<()>,
) -> Result<FoldRun<T>> {
    let shape = [case.data.shape()[1], case.data.shape()[2], case.data.shape()[3]];
    let grid = TileGrid::for_network(shape, case.patch, case.step_size, case.network_dims)?;
    let settings = WindowSettings {
        grid: &grid,
        gaussian: case.gaussian,
        flips: case.flips,
        classes: case.classes,
        collect_evidence: case.collect_evidence,
        selected: None,
    };
    let padded_data = padded(case.data, &grid);
    let folds = networks.len();
    if folds == 0 {
        return Err(crate::error::Error::invalid_model("the model has no fold to run"));
    }

    let mut coarse = None;
    let mut selected = None;
    let mut network_passes = 0;
    let stages = if case.roi_focus { folds + 1 } else { folds };
    if case.roi_focus {
        let coarse_grid = TileGrid::for_network(shape, case.patch, roi::COARSE_STEP, case.network_dims)?;
        let coarse_settings = WindowSettings { grid: &coarse_grid, flips: &[], ..settings.clone() };
        let first = predict_fold::<T>(
            &padded(case.data, &coarse_grid),
            &coarse_settings,
            networks[0].as_mut(),
            buffers,
            &mut |done, total| progress(done as f64 / (stages * total) as f64),
        )?;
        network_passes += coarse_grid.len();
        let foreground = roi::foreground(&first.logits);
        selected = Some(roi::select_tiles(&grid, &foreground, roi::margin(case.patch)));
        coarse = Some((first.logits, first.evidence));
    }
    let settings = WindowSettings { selected: selected.as_deref(), ..settings };
    let first_stage = stages - folds;

    let mut average = FoldAverage::<T>::default();
    let mut evidence = Vec::with_capacity(folds);
    for (f, network) in networks.iter_mut().enumerate() {
        let out = predict_fold::<T>(&padded_data, &settings, network.as_mut(), buffers, &mut |done, total| {
            progress((first_stage + f) as f64 / stages as f64 + done as f64 / (stages * total.max(1)) as f64)
        })?;
        network_passes +=
            (1 + case.flips.len()) * selected.as_ref().map_or(grid.len(), |s| s.iter().filter(|&&run| run).count());
        average.add(out.logits);
        evidence.push(out.evidence);
    }
    let mut logits =
        average.finish().ok_or_else(|| crate::error::Error::invalid_model("the model has no fold to run"))?;
    if let (Some((coarse, coarse_evidence)), Some(selected)) = (coarse, &selected) {
        roi::fill_uncovered(&mut logits, &coarse, &roi::coverage(&grid, selected));
        if !selected.contains(&true) {
            // No foreground anywhere: the first pass is the only evidence there is.
            evidence = vec![coarse_evidence];
        }
    }
    Ok(FoldRun { logits, evidence, tiles: grid.len(), passes_per_tile: 1 + case.flips.len(), network_passes })
}

/// Running fold average, in nnU-Net's order: `total = first; total += next` (rounded to the
/// logit type per addition), then `total / n` when there is more than one fold. Folds are added
/// as they finish, so only one fold's logits are held besides the total.
#[derive(Debug, Default)]
pub struct FoldAverage<T> {
    total: Option<Array4<T>>,
    folds: usize,
}

impl<T: LogitScalar> FoldAverage<T> {
    /// Adds one fold's logits.
    pub fn add(&mut self, next: Array4<T>) {
        self.folds += 1;
        match &mut self.total {
            None => self.total = Some(next),
            Some(total) => total.zip_mut_with(&next, |t, &x| *t = T::from_f32(t.to_f32() + x.to_f32())),
        }
    }

    /// The average (None when no fold was added).
    pub fn finish(self) -> Option<Array4<T>> {
        let mut total = self.total?;
        if self.folds > 1 {
            let n = self.folds as f32;
            total.mapv_inplace(|t| T::from_f32(t.to_f32() / n));
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns its input channels as logits (classes = channels); its one head logit is the
    /// index of the pass within the tile, so the mirror average of the head shows.
    struct Identity {
        tile_len: usize,
        passes: usize,
        calls: usize,
        input: Vec<f32>,
        cls: Vec<f32>,
    }

    impl Identity {
        fn new(channels: usize, patch: [usize; 3], passes: usize) -> Identity {
            let tile_len = channels * patch.iter().product::<usize>();
            Identity { tile_len, passes, calls: 0, input: Vec::new(), cls: Vec::new() }
        }
    }

    impl TileNetwork for Identity {
        fn input(&mut self, batch: usize) -> Result<&mut [f32]> {
            assert_eq!(batch, 1, "passes run one at a time");
            self.input.resize(batch * self.tile_len, 0.0);
            Ok(&mut self.input)
        }
        fn run(&mut self) -> Result<crate::backend::TileOutputs<'_>> {
            self.cls = vec![(self.calls % self.passes) as f32];
            self.calls += 1;
            Ok(crate::backend::TileOutputs { segmentation: &self.input, classification: &self.cls })
        }
    }

    fn run_identity(
        shape: [usize; 3],
        patch: [usize; 3],
        step: f64,
        flips: &[[bool; 3]],
    ) -> (Array4<f32>, FoldLogits<f16>) {
        let channels = 2;
        let n: usize = shape.iter().product();
        let data = Array4::from_shape_fn((channels, shape[0], shape[1], shape[2]), |(c, z, y, x)| {
            ((c * 7 + z * 3 + y * 5 + x) % 11) as f32 * 0.25 - 1.0
        });
        let grid = TileGrid::new(shape, patch, step).unwrap();
        let gaussian = gaussian::gaussian_map(patch);
        let settings = WindowSettings {
            grid: &grid,
            gaussian: &gaussian,
            flips,
            classes: channels,
            collect_evidence: true,
            selected: None,
        };
        let padded = pad(data.view(), &grid);
        let mut net = Identity::new(channels, patch, 1 + flips.len());
        let mut ticks = 0;
        let out = predict_fold(&padded, &settings, &mut net, &mut TileBuffers::default(), &mut |done, total| {
            ticks += 1;
            assert_eq!(done, ticks);
            assert_eq!(total, grid.len() * (1 + flips.len()), "one report per network pass");
            Ok(())
        })
        .unwrap();
        assert_eq!(net.calls, grid.len() * (1 + flips.len()));
        assert_eq!(ticks, net.calls);
        assert_eq!(out.evidence.len(), grid.len());
        assert_eq!(n * channels, out.logits.len());
        (data, out)
    }

    #[test]
    fn an_identity_network_gives_back_its_input_through_the_tiling() {
        let all = mirror::flip_sets(&[0, 1, 2]);
        for (shape, patch, step) in [
            ([9, 20, 17], [8, 16, 16], 0.5),
            ([5, 7, 30], [8, 8, 8], 0.5),
            ([16, 16, 16], [16, 16, 16], 0.5),
            ([23, 18, 41], [8, 8, 16], 0.3),
            ([23, 18, 41], [8, 8, 16], 1.0),
            ([3, 3, 3], [4, 4, 4], 0.75),
        ] {
            for flips in [&all[..0], &all[..]] {
                let (data, out) = run_identity(shape, patch, step, flips);
                let weights = summed_weights(shape, patch, step);
                for (i, (a, b)) in out.logits.iter().zip(data.iter()).enumerate() {
                    // float16 accumulation rounds once per overlapping tile (relative 2^-11 each); where only tile corners cover a voxel
                    // its weight is a float16 subnormal, so every addition into the weighted sum
                    // and into the weight (at most 8 overlapping tiles here) is quantised to
                    // 2^-24, i.e. 2^-24 / weight in the result (nnU-Net's own corner effect).
                    let w = weights[i % weights.len()];
                    let tolerance = (8.0 * f16::EPSILON.to_f32() + 8.0 * 2f32.powi(-24) / w) * b.abs().max(1.0);
                    assert!((a.to_f32() - b).abs() <= tolerance, "{shape:?} {patch:?} {step}: {a} vs {b} (weight {w})");
                }
            }
        }
    }

    /// Total Gaussian weight per unpadded voxel, summed in float32.
    fn summed_weights(shape: [usize; 3], patch: [usize; 3], step: f64) -> Vec<f32> {
        let grid = TileGrid::new(shape, patch, step).unwrap();
        let g = gaussian::gaussian_map(patch);
        let mut w = ndarray::Array3::<f32>::zeros(grid.padded);
        for [a, b, c] in grid.tiles() {
            let mut tile = w.slice_mut(s![a..a + patch[0], b..b + patch[1], c..c + patch[2]]);
            tile.iter_mut().zip(&g).for_each(|(t, v)| *t += v.to_f32());
        }
        let [pa, pb, pc] = grid.pad_before;
        w.slice(s![pa..pa + shape[0], pb..pb + shape[1], pc..pc + shape[2]]).iter().copied().collect()
    }

    #[test]
    fn evidence_sums_softmax_over_the_tile_and_averages_head_logits() {
        let all = mirror::flip_sets(&[0, 1, 2]);
        let (_, out) = run_identity([8, 8, 8], [8, 8, 8], 0.5, &all);
        let e = &out.evidence[0];
        assert!((e.label_volume.iter().sum::<f64>() - 512.0).abs() < 1e-9, "probabilities sum to the voxel count");
        assert_eq!(e.class_logits, vec![3.5], "mean of pass indices 0..8");
    }

    #[test]
    fn single_precision_accumulation_is_exact_for_an_identity_network() {
        let patch = [8, 8, 8];
        let grid = TileGrid::new([11, 9, 13], patch, 0.5).unwrap();
        let gaussian = gaussian::gaussian_map(patch);
        let settings = WindowSettings {
            grid: &grid,
            gaussian: &gaussian,
            flips: &[],
            classes: 1,
            collect_evidence: false,
            selected: None,
        };
        let data = Array4::from_shape_fn((1, 11, 9, 13), |(_, z, y, x)| (z * 100 + y * 10 + x) as f32);
        let mut net = Identity::new(1, patch, 1);
        let out: FoldLogits<f32> = predict_fold(
            &pad(data.view(), &grid),
            &settings,
            &mut net,
            &mut TileBuffers::default(),
            &mut |_, _| Ok(()),
        )
        .unwrap();
        for (a, b) in out.logits.iter().zip(data.iter()) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn fold_average_rounds_like_half_tensors() {
        let a = Array4::from_elem((1, 1, 1, 2), f16::from_f32(1.0));
        let b = Array4::from_elem((1, 1, 1, 2), f16::from_f32(2.0));
        let c = Array4::from_elem((1, 1, 1, 2), f16::from_f32(0.0009765625));
        let mut average = FoldAverage::default();
        for fold in [a, b, c] {
            average.add(fold);
        }
        let avg = average.finish().unwrap();
        // 1 + 2 = 3, 3 + 2^-10 rounds to 3 in float16 (spacing 2^-9 there), 3 / 3 = 1.
        assert_eq!(avg[[0, 0, 0, 0]].to_f32(), 1.0);
    }
}
