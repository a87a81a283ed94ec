//! nnU-Net's normalisation schemes, in float32 arithmetic as numpy performs them.

use crate::error::{Error, Result};
use crate::folder::Normalization;

/// Normalises one channel in place. `mask` (hole-filled nonzero region) is used only by
/// ZScore with `use_mask_for_norm`.
pub fn normalize_channel(data: &mut [f32], scheme: &Normalization, mask: Option<&[bool]>) -> Result<()> {
    match *scheme {
        Normalization::Ct { lower, upper, mean, std } => {
            for v in data.iter_mut() {
                *v = (v.clamp(lower, upper) - mean) / std;
            }
        }
        Normalization::ZScore { use_mask: true } => {
            let mask = mask.ok_or_else(|| Error::runtime("ZScore with use_mask_for_norm needs the nonzero mask"))?;
            let selected = data.iter().zip(mask).filter(|(_, &m)| m).map(|(v, _)| *v);
            let (mean, std) = mean_std(selected);
            let std = std.max(1e-8);
            for (v, _) in data.iter_mut().zip(mask).filter(|(_, &m)| m) {
                *v = (*v - mean) / std;
            }
        }
        Normalization::ZScore { use_mask: false } => {
            let (mean, std) = mean_std(data.iter().copied());
            let std = std.max(1e-8);
            for v in data.iter_mut() {
                *v = (*v - mean) / std;
            }
        }
        Normalization::NoNorm => {}
        Normalization::RescaleTo01 => {
            let min = data.iter().copied().fold(f32::INFINITY, f32::min);
            for v in data.iter_mut() {
                *v -= min;
            }
            let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(1e-8);
            for v in data.iter_mut() {
                *v /= max;
            }
        }
        Normalization::RgbTo01 => {
            if let Some(bad) = data.iter().find(|v| !(0.0..=255.0).contains(*v)) {
                return Err(Error::invalid_image(format!("RGBTo01Normalization needs values in 0..255, found {bad}")));
            }
            for v in data.iter_mut() {
                *v /= 255.0;
            }
        }
    }
    Ok(())
}

/// Mean and population std as float32. numpy reduces float32 with pairwise float32 sums; a
/// float64 accumulator differs from it in the last bit at most, which shifts a few normalised
/// voxels by one ulp and never changes a segmentation in practice.
fn mean_std(values: impl Iterator<Item = f32> + Clone) -> (f32, f32) {
    let (sum, count) = values.clone().fold((0.0f64, 0usize), |(s, n), v| (s + v as f64, n + 1));
    if count == 0 {
        return (0.0, 0.0);
    }
    let mean = (sum / count as f64) as f32;
    let var = values.map(|v| ((v - mean) as f64).powi(2)).sum::<f64>() / count as f64;
    (mean, var.sqrt() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_normalisation_matches_the_golden_values() {
        let scheme = Normalization::Ct {
            lower: -55.99610900878906f64 as f32,
            upper: 179.97802734375f64 as f32,
            mean: 74.89175415039062f64 as f32,
            std: 44.09819793701172f64 as f32,
        };
        let mut values = [-1000.0f32, 0.0, 40.0, 100.0, 500.0];
        normalize_channel(&mut values, &scheme, None).unwrap();
        assert_eq!(values, [-2.9681, -1.6982951, -0.7912286, 0.5693712, 2.383006]);
    }

    #[test]
    fn zscore_with_mask_leaves_the_outside_untouched() {
        let mut values = [0.0f32, 2.0, 4.0, 0.0];
        let mask = [false, true, true, false];
        normalize_channel(&mut values, &Normalization::ZScore { use_mask: true }, Some(&mask)).unwrap();
        assert_eq!(values, [0.0, -1.0, 1.0, 0.0]);
        let mut plain = [1.0f32, 3.0];
        normalize_channel(&mut plain, &Normalization::ZScore { use_mask: false }, None).unwrap();
        assert_eq!(plain, [-1.0, 1.0]);
    }

    #[test]
    fn rescale_and_rgb() {
        let mut v = [2.0f32, 4.0, 6.0];
        normalize_channel(&mut v, &Normalization::RescaleTo01, None).unwrap();
        assert_eq!(v, [0.0, 0.5, 1.0]);
        let mut rgb = [0.0f32, 255.0];
        normalize_channel(&mut rgb, &Normalization::RgbTo01, None).unwrap();
        assert_eq!(rgb, [0.0, 1.0]);
        assert!(normalize_channel(&mut [300.0f32], &Normalization::RgbTo01, None).is_err());
    }
}
