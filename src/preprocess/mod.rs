//! nnU-Net's `DefaultPreprocessor` for one case: transpose, crop to nonzero, normalise,
//! resample to the plan's spacing. Pure functions of the volume and the [`Plan`].

pub mod crop;
pub mod normalize;
pub mod resample;

use ndarray::Array4;

use crate::error::{Error, Result};
use crate::model::Plan;
use crate::volume::VolumeView;

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
    let channels = plan.channel_names.len();
    if volume.channels() != channels {
        return Err(Error::shape_mismatch(format!(
            "the volume has {} channel(s) but the model expects {channels} ({})",
            volume.channels(),
            plan.channel_names.join(", ")
        )));
    }
    // nnU-Net's array axes are (z, y, x): the caller's dims and spacing reversed.
    let [dx, dy, dz] = volume.dims();
    let input_shape = [dz, dy, dx];
    let [sx, sy, sz] = volume.geometry().spacing;
    let input_spacing = [sz, sy, sx];
    let tf = plan.transpose_forward;
    let shape: [usize; 3] = std::array::from_fn(|i| input_shape[tf[i]]);
    let original_spacing: [f64; 3] = std::array::from_fn(|i| input_spacing[tf[i]]);

    let (bbox, mask) = crop::nonzero_box(volume, tf, plan.needs_nonzero_mask());
    let mut cropped = crop::crop_transposed(volume, tf, &bbox);
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
    let mut out = Vec::with_capacity(if resampling { channels * new_shape.iter().product::<usize>() } else { 0 });
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
    let out = if resampling {
        Array4::from_shape_vec((channels, new_shape[0], new_shape[1], new_shape[2]), out).expect("sizes match")
    } else {
        cropped
    };
    Ok(Preprocessed { data: out, shape_before_cropping: shape, bbox, shape_after_cropping, original_spacing })
}
