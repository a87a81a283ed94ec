//! From logits on the network's grid back to labels on the caller's grid
//! (`convert_predicted_logits_to_segmentation_with_correct_shape`): resample the logits
//! (float16, linear or separate-z), argmax with the first maximum winning, paste into the crop
//! box, undo the transpose. Probabilities (softmax, float32) on request.

use ndarray::Array4;
use rayon::prelude::*;

use crate::error::Result;
use crate::folder::Plan;
use crate::memory;
use crate::preprocess::{crop, Preprocessed};
use crate::resample;
use crate::window::LogitScalar;

/// A label map in the caller's memory order (x fastest): `u8` while every label fits, else `u16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Labels {
    /// Up to 255 labels (nnU-Net writes uint8 below 255).
    U8(Vec<u8>),
    /// More labels.
    U16(Vec<u16>),
}

impl Labels {
    /// Label of voxel `i`.
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Labels::U8(v) => v[i] as u32,
            Labels::U16(v) => v[i] as u32,
        }
    }

    /// The largest label value present (0 for an empty map).
    pub fn max_value(&self) -> u32 {
        match self {
            Labels::U8(v) => v.iter().copied().max().unwrap_or(0) as u32,
            Labels::U16(v) => v.iter().copied().max().unwrap_or(0) as u32,
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        match self {
            Labels::U8(v) => v.len(),
            Labels::U16(v) => v.len(),
        }
    }

    /// True for an empty map.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Voxel count per label value `0..classes`.
    pub fn counts(&self, classes: usize) -> Vec<u64> {
        let mut counts = vec![0u64; classes];
        for i in 0..self.len() {
            counts[self.get(i) as usize] += 1;
        }
        counts
    }
}

/// The exported result.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Labels on the input grid.
    pub labels: Labels,
    /// `(classes, z, y, x)` softmax probabilities on the input grid, when requested.
    pub probabilities: Option<Vec<f32>>,
}

/// Logits resampled to the cropped input grid (same element type, transposed axes), one channel
/// at a time.
pub fn resample_logits<T: LogitScalar>(logits: &Array4<T>, pre: &Preprocessed, plan: &Plan) -> Result<Array4<T>> {
    let shape = [logits.shape()[1], logits.shape()[2], logits.shape()[3]];
    let target = pre.shape_after_cropping;
    let classes = logits.shape()[0];
    let mut out = Vec::new();
    memory::reserve(&mut out, classes * target.iter().product::<usize>(), "the logits resampled to the input grid")?;
    for c in 0..classes {
        let channel = logits.index_axis(ndarray::Axis(0), c);
        let channel = channel.as_standard_layout();
        out.extend(resample::resample_channel(
            channel.as_slice().expect("standard layout"),
            shape,
            target,
            plan.target_spacing(pre.original_spacing),
            pre.original_spacing,
            &plan.resample_probabilities,
        ));
    }
    Ok(Array4::from_shape_vec((classes, target[0], target[1], target[2]), out).expect("sizes match"))
}

/// Argmax (first maximum), un-crop and un-transpose; softmax probabilities when asked.
pub fn export<T: LogitScalar>(
    logits: &Array4<T>,
    pre: &Preprocessed,
    plan: &Plan,
    with_probabilities: bool,
) -> Result<Exported> {
    // On the input's own grid already (no resampling): use the logits as they are.
    let same_grid = logits.shape()[1..] == pre.shape_after_cropping[..];
    let resampled = if same_grid {
        std::borrow::Cow::Borrowed(logits)
    } else {
        std::borrow::Cow::Owned(resample_logits(logits, pre, plan)?)
    };
    let classes = resampled.shape()[0];
    let crop_shape = pre.shape_after_cropping;
    let voxels: usize = crop_shape.iter().product();
    let flat = resampled.as_slice().expect("standard layout");

    let (crop_labels, crop_probabilities): (Vec<u16>, Option<Vec<f32>>) = if let Some(regions) = &plan.regions {
        // Region-based: per-region sigmoids in float32 (nnU-Net's torch.sigmoid of the
        // widened logits); the labels follow from them either way.
        let mut probabilities = memory::try_filled(classes * voxels, 0f32, "the region probabilities")?;
        for (p, v) in probabilities.iter_mut().zip(flat) {
            *p = sigmoid(v.to_f32());
        }
        let labels = threshold_regions(&probabilities, regions);
        (labels, with_probabilities.then_some(probabilities))
    } else if with_probabilities {
        let mut probabilities = memory::try_filled(classes * voxels, 0f32, "the probabilities")?;
        let labels = (0..voxels)
            .map(|v| {
                let max = (0..classes).map(|c| flat[c * voxels + v].to_f32()).fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for c in 0..classes {
                    let e = (flat[c * voxels + v].to_f32() - max).exp();
                    probabilities[c * voxels + v] = e;
                    sum += e;
                }
                for c in 0..classes {
                    probabilities[c * voxels + v] /= sum;
                }
                first_max((0..classes).map(|c| probabilities[c * voxels + v]))
            })
            .collect();
        (labels, Some(probabilities))
    } else {
        (argmax(flat, classes, voxels), None)
    };

    // Paste into the full (transposed) grid and write each voxel at its input position.
    let full = pre.shape_before_cropping;
    let total: usize = full.iter().product();
    let tf = plan.transpose_forward;
    let input_shape: [usize; 3] = std::array::from_fn(|a| full[plan.transpose_backward[a]]);
    let strides = [input_shape[1] * input_shape[2], input_shape[2], 1];
    let rows = crop::CropRows::new(crop_shape, &pre.bbox, tf, strides);
    let row_len = crop_shape[2];
    // Writes every crop voxel's value at its input position, a row at a time.
    fn paste<S: Copy, D>(rows: &crop::CropRows, row_len: usize, values: &[S], out: &mut [D], convert: impl Fn(S) -> D) {
        let stride = rows.stride();
        for (r, row) in values.chunks(row_len).enumerate() {
            let start = rows.start(r);
            for (k, &v) in row.iter().enumerate() {
                out[start + k * stride] = convert(v);
            }
        }
    }
    let labels = if plan.num_classes() <= 256 {
        let mut out = memory::try_filled(total, 0u8, "the label map")?;
        paste(&rows, row_len, &crop_labels, &mut out, |l| l as u8);
        Labels::U8(out)
    } else {
        let mut out = memory::try_filled(total, 0u16, "the label map")?;
        paste(&rows, row_len, &crop_labels, &mut out, |l| l);
        Labels::U16(out)
    };
    let probabilities = match crop_probabilities {
        None => None,
        Some(p) => {
            // Outside the crop box nnU-Net reports certain background: channel 0 is 1 for softmax
            // models; every region is off (0) for region-based ones.
            let mut out = memory::try_filled(classes * total, 0f32, "the probabilities on the input grid")?;
            if plan.regions.is_none() {
                out[..total].fill(1.0);
            }
            for (values, channel) in p.chunks(voxels).zip(out.chunks_mut(total)) {
                paste(&rows, row_len, values, channel, |v| v);
            }
            Some(out)
        }
    };
    Ok(Exported { labels, probabilities })
}

/// Peak bytes of [`export`] from `new_shape` logits (`classes` channels, `logit_bytes` each) back
/// to `shape`: the logits and, when resampling, the resampled logits plus one channel in float64
/// three times; the labels; probabilities (cropped and pasted) when requested.
pub fn working_set_bytes(
    classes: usize,
    shape: [usize; 3],
    new_shape: [usize; 3],
    logit_bytes: u64,
    probabilities: bool,
) -> u64 {
    // In f64, cast back saturating (see `preprocess::working_set_bytes`).
    let (classes, logit_bytes) = (classes as f64, logit_bytes as f64);
    let input: f64 = shape.iter().map(|&n| n as f64).product();
    let resampled: f64 = new_shape.iter().map(|&n| n as f64).product();
    let resampling = new_shape != shape;
    (classes * resampled * logit_bytes
        + if resampling { classes * input * logit_bytes + 3.0 * input.max(resampled) * 8.0 } else { 0.0 }
        + 3.0 * input
        + if probabilities { 2.0 * classes * input * 4.0 } else { 0.0 }) as u64
}

/// The label map that probabilities `(outputs, voxels)` give (softmax probabilities or region
/// sigmoids, e.g. an ensemble's average): the first maximum, or each region where its probability
/// is above 0.5 in `regions_class_order`, later regions overwriting earlier ones — nnU-Net's
/// `convert_probabilities_to_segmentation`.
pub fn labels_from_probabilities(probabilities: &[f32], plan: &Plan) -> Labels {
    let labels = match &plan.regions {
        Some(regions) => threshold_regions(probabilities, regions),
        None => {
            let outputs = plan.num_outputs();
            let voxels = probabilities.len() / outputs;
            (0..voxels).map(|v| first_max((0..outputs).map(|c| probabilities[c * voxels + v]))).collect()
        }
    };
    if plan.num_classes() <= 256 {
        Labels::U8(labels.into_iter().map(|l| l as u8).collect())
    } else {
        Labels::U16(labels)
    }
}

/// float32 sigmoid as torch computes it for nnU-Net: `1 / (1 + exp(-x))`. Tiny positive logits
/// round to exactly 0.5, which is not "on".
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Region sigmoids `(regions, voxels)` to labels: a region is on where its probability is > 0.5,
/// regions written in order so later ones overwrite earlier ones; 0 where none is on.
fn threshold_regions(probabilities: &[f32], regions: &[crate::folder::Region]) -> Vec<u16> {
    let voxels = probabilities.len() / regions.len();
    let mut labels = vec![0u16; voxels];
    for (region, row) in regions.iter().zip(probabilities.chunks(voxels)) {
        for (label, &p) in labels.iter_mut().zip(row) {
            if p > 0.5 {
                *label = region.value as u16;
            }
        }
    }
    labels
}

/// Per voxel, the first class with the largest logit (`logits` is `(classes, voxels)`), computed
/// in blocks of voxels with whole rows widened at once.
fn argmax<T: LogitScalar>(logits: &[T], classes: usize, voxels: usize) -> Vec<u16> {
    const BLOCK: usize = 4096;
    let mut labels = vec![0u16; voxels];
    labels.par_chunks_mut(BLOCK).enumerate().for_each(|(b, out)| {
        let start = b * BLOCK;
        let mut best = vec![f32::NEG_INFINITY; out.len()];
        let mut row = vec![0f32; out.len()];
        for c in 0..classes {
            T::widen_row(&logits[c * voxels + start..][..out.len()], &mut row);
            for ((label, best), &v) in out.iter_mut().zip(best.iter_mut()).zip(&row) {
                // Strictly greater: the first maximum wins ties, as numpy's argmax.
                if v > *best {
                    *best = v;
                    *label = c as u16;
                }
            }
        }
    });
    labels
}

fn first_max(values: impl Iterator<Item = f32>) -> u16 {
    let mut best = (0u16, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i as u16, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_argmax_agrees_with_the_per_voxel_one() {
        let voxels = 10_000;
        let logits: Vec<half::f16> =
            (0..3 * voxels).map(|i| half::f16::from_f32(((i * 7919) % 13) as f32 * 0.5 - 3.0)).collect();
        let fast = argmax(&logits, 3, voxels);
        for (v, &label) in fast.iter().enumerate() {
            assert_eq!(label, first_max((0..3).map(|c| logits[c * voxels + v].to_f32())), "voxel {v}");
        }
    }

    #[test]
    fn later_regions_overwrite_earlier_ones_and_half_is_off() {
        let region = |value| crate::folder::Region { name: String::new(), labels: vec![], value };
        // voxels: none on, first on, both on, second only, exactly 0.5
        let probabilities = [0.1, 0.9, 0.9, 0.2, 0.5, 0.1, 0.2, 0.7, 0.6, 0.5];
        assert_eq!(threshold_regions(&probabilities, &[region(1), region(2)]), [0, 1, 2, 2, 0]);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(2f32.powi(-24)), 0.5, "float32 rounds tiny positive logits to one half");
        assert!(sigmoid(1e-3) > 0.5);
    }

    #[test]
    fn first_maximum_wins_ties() {
        assert_eq!(first_max([1.0, 3.0, 3.0].into_iter()), 1);
        assert_eq!(first_max([2.0, 2.0].into_iter()), 0);
    }
}
