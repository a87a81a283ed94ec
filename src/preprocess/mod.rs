//! nnU-Net's `DefaultPreprocessor` for one case: transpose, crop to nonzero, normalise,
//! resample to the plan's spacing. Pure functions of the volume and the [`Plan`].

pub mod crop;
pub mod normalize;

use ndarray::Array4;

use crate::error::{Error, Result};
use crate::export::Labels;
use crate::folder::Plan;
use crate::resample;
use crate::volume::{VolumeView, VoxelData};

/// A preprocessed case: the network's input grid and what export needs to undo it.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    /// `(channels, z', y', x')` float32 in nnU-Net's transposed axis order, not yet padded.
    pub data: Array4<f32>,
    /// Spatial shape of the transposed input before cropping.
    pub shape_before_cropping: [usize; 3],
    /// Half-open crop box per transposed axis.
    pub bbox: [[usize; 2]; 3],
    /// Spatial shape after cropping, before resampling.
    pub shape_after_cropping: [usize; 3],
    /// Input spacing in transposed order.
    pub original_spacing: [f64; 3],
}

/// Runs nnU-Net's preprocessing on `volume` for `plan`.
///
/// Fails with [`crate::ErrorKind::ShapeMismatch`] when the channel count differs from the model's.
pub fn preprocess(volume: &VolumeView<'_>, plan: &Plan) -> Result<Preprocessed> {
    preprocess_with_previous_stage(volume, plan, None)
}

/// [`preprocess`] for a cascade stage: `previous` is the previous stage's label map on the
/// volume's grid (x fastest). As nnU-Net's `DefaultPreprocessor` with a `seg_file`, it is
/// transposed and cropped with the image's box, set to -1 where it is background outside the
/// (hole-filled) nonzero mask, resampled as a segmentation (`resampling_fn_seg`), and its
/// foreground labels are appended one-hot after the image channels.
pub fn preprocess_with_previous_stage(
    volume: &VolumeView<'_>,
    plan: &Plan,
    previous: Option<&Labels>,
) -> Result<Preprocessed> {
    let channels = plan.channel_names.len();
    if volume.channels() != channels {
        return Err(Error::shape_mismatch(format!(
            "the volume has {} channel(s) but the model expects {channels} ({})",
            volume.channels(),
            plan.channel_names.join(", ")
        )));
    }
    let tf = plan.transpose_forward;
    let shape = plan.to_network_axes(volume.dims());
    let original_spacing = plan.to_network_axes(volume.geometry().spacing);

    let (bbox, mask) = crop::nonzero_box(volume, tf, plan.needs_nonzero_mask() || previous.is_some());
    let mut cropped = crop::crop_transposed(volume, tf, &bbox)?;
    let shape_after_cropping = [cropped.shape()[1], cropped.shape()[2], cropped.shape()[3]];
    let target_spacing = plan.target_spacing(original_spacing);
    let new_shape = resample::compute_new_shape(shape_after_cropping, original_spacing, target_spacing);
    if new_shape.contains(&0) {
        return Err(Error::invalid_image(format!(
            "the cropped image {shape_after_cropping:?} at spacing {original_spacing:?} resamples to {new_shape:?} at the model's spacing {target_spacing:?}; it is too small"
        )));
    }

    let resampling = new_shape != shape_after_cropping;
    // Without resampling the normalised crop is the result: no second copy of the volume.
    let mut out = Vec::new();
    if resampling {
        crate::memory::reserve(&mut out, channels * new_shape.iter().product::<usize>(), "the resampled input")?;
    }
    for c in 0..channels {
        let mut channel = cropped.index_axis_mut(ndarray::Axis(0), c);
        let channel = channel.as_slice_mut().expect("a fresh crop is contiguous");
        normalize::normalize_channel(channel, &plan.normalization[c], mask.as_deref())?;
        if !resampling {
            continue;
        }
        out.extend(resample::resample_channel(
            channel,
            shape_after_cropping,
            new_shape,
            original_spacing,
            target_spacing,
            &plan.resample_data,
        ));
    }
    let mut out = if resampling {
        Array4::from_shape_vec((channels, new_shape[0], new_shape[1], new_shape[2]), out).expect("sizes match")
    } else {
        cropped
    };
    if let Some(previous) = previous {
        let mask = mask.as_deref().expect("computed for a cascade");
        let seg = previous_stage_channels(volume, plan, previous, &bbox, mask, original_spacing, new_shape)?;
        out = ndarray::concatenate(ndarray::Axis(0), &[out.view(), seg.view()]).expect("same spatial shape");
    }
    Ok(Preprocessed { data: out, shape_before_cropping: shape, bbox, shape_after_cropping, original_spacing })
}

/// Peak bytes of [`preprocess`] for `channels` channels of `shape` voxels (transposed) resampled
/// to `new_shape`: the cropped float32 copy and, when resampling, one channel's float64 input,
/// spline coefficients (12 voxels of padding per side), in-plane planes and output, plus the
/// float32 result. Counted on the uncropped shape: a crop only shrinks these buffers.
pub fn working_set_bytes(channels: usize, shape: [usize; 3], new_shape: [usize; 3]) -> u64 {
    // In f64, cast back saturating: an absurd shape (a spacing of 1e300 mm) gives an estimate no
    // memory holds, never an overflow.
    let channels = channels as f64;
    let input: f64 = shape.iter().map(|&n| n as f64).product();
    let resampled: f64 = new_shape.iter().map(|&n| n as f64).product();
    let spline: f64 = (0..3).map(|i| shape[i] as f64 + 24.0).product();
    let in_plane = (shape[0] as f64 + 24.0) * new_shape[1] as f64 * new_shape[2] as f64;
    let resample_work = input * 8.0 + spline * 8.0 + in_plane * 8.0 + resampled * 8.0 + channels * resampled * 4.0;
    (channels * input * 4.0 + if new_shape != shape { resample_work } else { 0.0 }) as u64
}

/// The previous stage's labels as the cascade network's extra channels, on the preprocessed grid.
fn previous_stage_channels(
    volume: &VolumeView<'_>,
    plan: &Plan,
    previous: &Labels,
    bbox: &[[usize; 2]; 3],
    nonzero: &[bool],
    original_spacing: [f64; 3],
    new_shape: [usize; 3],
) -> Result<Array4<f32>> {
    if previous.len() != volume.voxels_per_channel() {
        return Err(Error::shape_mismatch(format!(
            "the previous stage's label map has {} voxels but the volume has {}",
            previous.len(),
            volume.voxels_per_channel()
        )));
    }
    let data = match previous {
        Labels::U8(values) => VoxelData::U8(values),
        Labels::U16(values) => VoxelData::U16(values),
    };
    let view = VolumeView::new(data, volume.dims(), 1, *volume.geometry())?;
    let cropped = crop::crop_transposed(&view, plan.transpose_forward, bbox)?;
    let shape = [cropped.shape()[1], cropped.shape()[2], cropped.shape()[3]];
    // nnU-Net's nonzero_label: background outside the nonzero mask becomes -1.
    let seg: Vec<i16> =
        cropped.iter().zip(nonzero).map(|(&v, &inside)| if v == 0.0 && !inside { -1 } else { v as i16 }).collect();
    let target_spacing = plan.target_spacing(original_spacing);
    let seg =
        resample::resample_segmentation(&seg, shape, new_shape, original_spacing, target_spacing, &plan.resample_seg);
    let foreground = plan.foreground_labels();
    let voxels = seg.len();
    let mut channels = Array4::<f32>::zeros((foreground.len(), new_shape[0], new_shape[1], new_shape[2]));
    let flat = channels.as_slice_mut().expect("fresh array");
    for (k, &label) in foreground.iter().enumerate() {
        for (out, &v) in flat[k * voxels..(k + 1) * voxels].iter_mut().zip(&seg) {
            *out = if v as i64 == label as i64 { 1.0 } else { 0.0 };
        }
    }
    Ok(channels)
}
