//! nnU-Net's Gaussian importance map (`compute_gaussian`, sigma = patch / 8, peak 10, float16).

use half::f16;

/// The importance map for `patch`, C order, as float16: `10 * prod_d exp(-(i_d - P_d // 2)^2 /
/// (2 (P_d / 8)^2))` evaluated in float64, rounded to float16, zeros replaced by the smallest
/// nonzero value of the map (so every voxel has a positive weight).
pub fn gaussian_map(patch: [usize; 3]) -> Vec<f16> {
    let mut map = unclamped_map(patch);
    let smallest = map.iter().filter(|v| v.to_f32() > 0.0).fold(f16::MAX, |m, &v| m.min(v));
    for v in map.iter_mut().filter(|v| v.to_f32() == 0.0) {
        *v = smallest;
    }
    map
}

/// The map rounded to float16, before zeros are replaced.
fn unclamped_map(patch: [usize; 3]) -> Vec<f16> {
    let axis = |d: usize| -> Vec<f64> {
        let centre = (patch[d] / 2) as f64;
        let sigma = patch[d] as f64 / 8.0;
        (0..patch[d]).map(|i| (-((i as f64 - centre).powi(2)) / (2.0 * sigma * sigma)).exp()).collect()
    };
    let (a, b, c) = (axis(0), axis(1), axis(2));
    let mut map: Vec<f16> = Vec::with_capacity(patch.iter().product());
    for &x in &a {
        for &y in &b {
            for &z in &c {
                map.push(f16::from_f64(10.0 * (x * y * z)));
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values from tools/make_unit_golden_values.py (which also checks this table).
    #[test]
    fn matches_the_golden_values_for_the_pancreas_patch() {
        let patch = [64, 128, 192];
        let map = gaussian_map(patch);
        let at = |z: usize, y: usize, x: usize| map[(z * patch[1] + y) * patch[2] + x].to_bits();
        assert_eq!(at(32, 64, 96), 0x4900, "peak 10.0");
        assert_eq!(at(31, 63, 95), 0x48f2);
        assert_eq!(at(16, 32, 48), 0x2658);
        assert_eq!(at(32, 64, 0), 0x1adf);
        assert_eq!(at(0, 64, 96), 0x1adf);
        assert_eq!(at(0, 0, 0), 0x0001, "clamped to the smallest subnormal");
        assert_eq!(at(63, 127, 191), 0x0001);
        let clamped = unclamped_map(patch).iter().filter(|v| v.to_f32() == 0.0).count();
        assert_eq!(clamped, 6839);
    }
}
