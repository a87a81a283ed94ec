//! Resampling exactly as nnU-Net's `resample_data_or_seg_to_shape` does it.
//!
//! nnU-Net resizes with `skimage.transform.resize(mode='edge', anti_aliasing=False)`, which is
//! `scipy.ndimage.zoom(order, mode='nearest', grid_mode=True)` on float64 followed by clipping to
//! the input's range. This module reproduces that arithmetic operation by operation (float64,
//! same summation order), so results agree bit for bit after rounding to the output type:
//!
//! * output index `k` of an axis of `n -> m` samples reads input coordinate
//!   `(k + 0.5) * (n / m) - 0.5`;
//! * order 3: the input is edge-padded by 12 samples on every side of every axis, prefiltered
//!   into cubic B-spline coefficients (pole `sqrt(3) - 2`, "reflect" initialisation), and each
//!   output is the sum of 4^d taps `coef * w_0 * w_1 (* w_2)`, last axis fastest;
//! * order 1: 2^d taps with indices clamped to the input;
//! * anisotropic ("separate z") data: 2-D resizing of every slice across the thick axis, then
//!   nearest-neighbour along it (round half up), as nnU-Net does for thick-slice CT.
//!
//! The work is parallel over output slices; it is a pure function of its inputs.

use rayon::prelude::*;

use crate::model::ResamplingSpec;

/// Voxels padded on each side before the order-3 prefilter (what scipy does for mode `nearest`).
const SPLINE_PAD: usize = 12;
/// nnU-Net's `ANISO_THRESHOLD`: spacing ratios above it resample the thick axis separately.
const ANISOTROPY_THRESHOLD: f64 = 3.0;

/// Python's `round()` / numpy's `np.round` on a float: ties to even.
pub fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// nnU-Net's `compute_new_shape`: `round((old_spacing / new_spacing) * shape)` per axis, in
/// float64 and in that order, ties to even.
pub fn compute_new_shape(shape: [usize; 3], old_spacing: [f64; 3], new_spacing: [f64; 3]) -> [usize; 3] {
    std::array::from_fn(|i| round_half_even((old_spacing[i] / new_spacing[i]) * shape[i] as f64) as usize)
}

/// The thick axis to resample separately, or `None` for full 3-D resampling
/// (`determine_do_sep_z_and_axis`).
pub fn separate_z_axis(current_spacing: [f64; 3], new_spacing: [f64; 3], force: Option<bool>) -> Option<usize> {
    let anisotropic = |s: [f64; 3]| {
        let max = s.iter().cloned().fold(f64::MIN, f64::max);
        let min = s.iter().cloned().fold(f64::MAX, f64::min);
        max / min > ANISOTROPY_THRESHOLD
    };
    let lowres_axes = |s: [f64; 3]| {
        let max = s.iter().cloned().fold(f64::MIN, f64::max);
        (0..3).filter(|&i| max / s[i] == 1.0).collect::<Vec<_>>()
    };
    let axes = match force {
        Some(false) => return None,
        Some(true) => lowres_axes(current_spacing),
        None if anisotropic(current_spacing) => lowres_axes(current_spacing),
        None if anisotropic(new_spacing) => lowres_axes(new_spacing),
        None => return None,
    };
    // Two or three equally coarse axes: nnU-Net falls back to full 3-D resampling.
    (axes.len() == 1).then(|| axes[0])
}

/// A sample type the resampler reads and writes: float32 for images, float16 for logits.
/// Work is in float64 and each result is rounded once to the output type.
pub trait Sample: Copy + Send + Sync {
    /// Widen to float64 (exact).
    fn to_f64(self) -> f64;
    /// Round a float64 result to this type (round to nearest even, directly from float64).
    fn from_f64(v: f64) -> Self;
}

impl Sample for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Sample for half::f16 {
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        half::f16::from_f64(v)
    }
}

/// Resamples one channel, `input` of `shape` (C order), to `new_shape`, as nnU-Net's
/// `resample_data_or_seg_to_shape` does for one channel of data (`is_seg = False`).
pub fn resample_channel<T: Sample>(
    input: &[T],
    shape: [usize; 3],
    new_shape: [usize; 3],
    current_spacing: [f64; 3],
    new_spacing: [f64; 3],
    spec: &ResamplingSpec,
) -> Vec<T> {
    debug_assert_eq!(input.len(), shape.iter().product::<usize>());
    if shape == new_shape {
        return input.to_vec();
    }
    let data: Vec<f64> = input.iter().map(|v| v.to_f64()).collect();
    match separate_z_axis(current_spacing, new_spacing, spec.force_separate_z) {
        None => {
            let out = resize_3d(&data, shape, new_shape, spec.order);
            out.into_par_iter().map(T::from_f64).collect()
        }
        Some(axis) => resample_separate_z(&data, shape, new_shape, axis, spec.order),
    }
}

/// skimage `resize` of a 3-D float64 array: zoom, then clip to the input's range.
pub fn resize_3d(data: &[f64], shape: [usize; 3], new_shape: [usize; 3], order: usize) -> Vec<f64> {
    if shape == new_shape {
        return data.to_vec();
    }
    let (lo, hi) = min_max(data);
    let mut out = match order {
        0 => zoom_nearest_3d(data, shape, new_shape),
        1 => zoom_linear_3d(data, shape, new_shape),
        _ => zoom_cubic_3d(data, shape, new_shape),
    };
    out.par_iter_mut().for_each(|v| *v = v.clamp(lo, hi));
    out
}

/// skimage `resize` of a 2-D float64 slice.
pub fn resize_2d(data: &[f64], shape: [usize; 2], new_shape: [usize; 2], order: usize) -> Vec<f64> {
    let as3 = |s: [usize; 2]| [1, s[0], s[1]];
    if shape == new_shape {
        return data.to_vec();
    }
    let (lo, hi) = min_max(data);
    let mut out = match order {
        0 => zoom_nearest_3d(data, as3(shape), as3(new_shape)),
        1 => zoom_linear_3d(data, as3(shape), as3(new_shape)),
        _ => zoom_cubic_2d(data, shape, new_shape),
    };
    out.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
    out
}

fn min_max(data: &[f64]) -> (f64, f64) {
    data.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Separate-z: 2-D resize of every slice across `axis`, then nearest along `axis`.
fn resample_separate_z<T: Sample>(
    data: &[f64],
    shape: [usize; 3],
    new_shape: [usize; 3],
    axis: usize,
    order: usize,
) -> Vec<T> {
    // The two in-plane axes, in order.
    let plane: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    let (pa, pb) = (plane[0], plane[1]);
    let in_plane = [shape[pa], shape[pb]];
    let out_plane = [new_shape[pa], new_shape[pb]];
    let strides = [shape[1] * shape[2], shape[2], 1];
    // Resample every slice in-plane (parallel over slices).
    let slices: Vec<Vec<f64>> = (0..shape[axis])
        .into_par_iter()
        .map(|s| {
            let mut slice = Vec::with_capacity(in_plane[0] * in_plane[1]);
            for a in 0..in_plane[0] {
                for b in 0..in_plane[1] {
                    slice.push(data[s * strides[axis] + a * strides[pa] + b * strides[pb]]);
                }
            }
            resize_2d(&slice, in_plane, out_plane, order)
        })
        .collect();
    // Nearest neighbour along the thick axis (map_coordinates order 0: round half up, clamped).
    let source = nearest_z_indices(shape[axis], new_shape[axis]);
    let out_strides = [new_shape[1] * new_shape[2], new_shape[2], 1];
    let mut out = vec![T::from_f64(0.0); new_shape.iter().product()];
    for (k, &src) in source.iter().enumerate() {
        let slice = &slices[src];
        for a in 0..out_plane[0] {
            for b in 0..out_plane[1] {
                out[k * out_strides[axis] + a * out_strides[pa] + b * out_strides[pb]] =
                    T::from_f64(slice[a * out_plane[1] + b]);
            }
        }
    }
    out
}

/// Source slice for each of `m` output slices when `n` slices are resampled by nearest neighbour
/// (`map_coordinates(order=0, mode='nearest')` at `(n / m) * (k + 0.5) - 0.5`, round half up).
pub fn nearest_z_indices(n: usize, m: usize) -> Vec<usize> {
    let scale = n as f64 / m as f64;
    (0..m)
        .map(|k| {
            let c = scale * (k as f64 + 0.5) - 0.5;
            ((c + 0.5).floor().max(0.0) as usize).min(n - 1)
        })
        .collect()
}

/// Input coordinate of output index `k` for an axis of `n -> m` samples (grid mode).
#[inline]
fn source_coordinate(k: usize, n: usize, m: usize) -> f64 {
    let zoom = n as f64 / m as f64;
    (k as f64 + 0.5) * zoom - 0.5
}

/// Per output index: first padded tap index and the four cubic B-spline weights.
fn cubic_taps(n: usize, m: usize) -> Vec<(usize, [f64; 4])> {
    (0..m)
        .map(|k| {
            let c = source_coordinate(k, n, m) + SPLINE_PAD as f64;
            let f = c.floor();
            let t = c - f;
            let u = 1.0 - t;
            let w0 = u * u * u / 6.0;
            let w1 = (t * t * (t - 2.0) * 3.0 + 4.0) / 6.0;
            let w2 = (u * u * (u - 2.0) * 3.0 + 4.0) / 6.0;
            let w3 = 1.0 - w0 - w1 - w2;
            let start = f as isize - 1;
            // The 12-sample pad keeps every tap inside the padded line; clamp anyway for safety.
            let max_start = (n + 2 * SPLINE_PAD) as isize - 4;
            (start.clamp(0, max_start) as usize, [w0, w1, w2, w3])
        })
        .collect()
}

/// Per output index: the two linear tap indices (clamped to the input) and weights.
fn linear_taps(n: usize, m: usize) -> Vec<([usize; 2], [f64; 2])> {
    (0..m)
        .map(|k| {
            let c = source_coordinate(k, n, m);
            let f = c.floor();
            let t = c - f;
            let w0 = 1.0 - t;
            let w1 = 1.0 - w0;
            let clamp = |i: f64| (i.max(0.0) as usize).min(n - 1);
            ([clamp(f), clamp(f + 1.0)], [w0, w1])
        })
        .collect()
}

/// Edge-pads by [`SPLINE_PAD`] and converts to cubic B-spline coefficients along every axis.
fn spline_coefficients(data: &[f64], shape: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let padded: Vec<usize> = shape.iter().map(|&n| n + 2 * SPLINE_PAD).collect();
    let total: usize = padded.iter().product();
    let mut coef = vec![0.0; total];
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * padded[d + 1];
    }
    let mut in_strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    coef.par_chunks_mut(padded[rank - 1]).enumerate().for_each(|(row, line)| {
        // Index of this row in the padded array's leading axes, clamped into the input.
        let mut rest = row;
        let mut base = 0;
        for d in (0..rank - 1).rev() {
            let i = rest % padded[d];
            rest /= padded[d];
            base += i.saturating_sub(SPLINE_PAD).min(shape[d] - 1) * in_strides[d];
        }
        for (j, v) in line.iter_mut().enumerate() {
            *v = data[base + j.saturating_sub(SPLINE_PAD).min(shape[rank - 1] - 1)];
        }
    });
    for axis in 0..rank {
        prefilter_axis(&mut coef, &padded, &strides, axis);
    }
    (coef, padded)
}

fn prefilter_axis(coef: &mut [f64], shape: &[usize], strides: &[usize], axis: usize) {
    let len = shape[axis];
    if len < 2 {
        return;
    }
    let stride = strides[axis];
    let lines: Vec<usize> = (0..coef.len()).filter(|i| (i / stride) % len == 0).collect();
    // Lines along `axis` are independent; gather, filter and scatter them in parallel chunks.
    let ptr = SharedMut(coef.as_mut_ptr());
    lines.par_chunks(64).for_each(|chunk| {
        let mut line = vec![0.0; len];
        for &start in chunk {
            for (i, v) in line.iter_mut().enumerate() {
                // SAFETY: `start + i * stride` are distinct indices of distinct lines (each index
                // of the array belongs to exactly one line along `axis`), all within `coef`.
                *v = unsafe { *ptr.get().add(start + i * stride) };
            }
            cubic_prefilter_line(&mut line);
            for (i, v) in line.iter().enumerate() {
                // SAFETY: as above; no other task touches this line.
                unsafe { *ptr.get().add(start + i * stride) = *v };
            }
        }
    });
}

/// A raw pointer that parallel tasks write through at indices they own exclusively.
#[derive(Clone, Copy)]
struct SharedMut(*mut f64);
// SAFETY: only used for disjoint writes (see `prefilter_axis`).
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}
impl SharedMut {
    fn get(self) -> *mut f64 {
        self.0
    }
}

/// Cubic B-spline interpolation coefficients of one line, in place (scipy's recursive filter
/// with the "reflect" boundary initialisation, operation for operation).
fn cubic_prefilter_line(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    // The pole sqrt(3) - 2 of the cubic B-spline, as scipy writes it.
    let z: f64 = -0.267949192431122706472553658494127633;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    for v in c.iter_mut() {
        *v *= gain;
    }
    // Causal initialisation, mirror-symmetric ("reflect") boundary.
    let zn = z.powf(n as f64);
    let mut s = c[0] + zn * c[n - 1];
    let mut zi = z;
    for i in 1..n {
        s += zi * (c[i] + zn * c[n - 1 - i]);
        zi *= z;
    }
    c[0] += s * (z / (1.0 - zn * zn));
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] *= z / (z - 1.0);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

fn zoom_cubic_3d(data: &[f64], shape: [usize; 3], new_shape: [usize; 3]) -> Vec<f64> {
    let (coef, padded) = spline_coefficients(data, &shape);
    let taps: Vec<Vec<(usize, [f64; 4])>> = (0..3).map(|d| cubic_taps(shape[d], new_shape[d])).collect();
    let (s0, s1) = (padded[1] * padded[2], padded[2]);
    let mut out = vec![0.0; new_shape.iter().product()];
    out.par_chunks_mut(new_shape[1] * new_shape[2]).enumerate().for_each(|(k0, plane)| {
        let (b0, w0) = taps[0][k0];
        for (k1, row) in plane.chunks_mut(new_shape[2]).enumerate() {
            let (b1, w1) = taps[1][k1];
            for (k2, v) in row.iter_mut().enumerate() {
                let (b2, w2) = taps[2][k2];
                let mut sum = 0.0;
                for i0 in 0..4 {
                    for i1 in 0..4 {
                        let base = (b0 + i0) * s0 + (b1 + i1) * s1 + b2;
                        for i2 in 0..4 {
                            sum += coef[base + i2] * w0[i0] * w1[i1] * w2[i2];
                        }
                    }
                }
                *v = sum;
            }
        }
    });
    out
}

fn zoom_cubic_2d(data: &[f64], shape: [usize; 2], new_shape: [usize; 2]) -> Vec<f64> {
    let (coef, padded) = spline_coefficients(data, &shape);
    let t0 = cubic_taps(shape[0], new_shape[0]);
    let t1 = cubic_taps(shape[1], new_shape[1]);
    let mut out = Vec::with_capacity(new_shape[0] * new_shape[1]);
    for &(b0, w0) in &t0 {
        for &(b1, w1) in &t1 {
            let mut sum = 0.0;
            for i0 in 0..4 {
                let base = (b0 + i0) * padded[1] + b1;
                for i1 in 0..4 {
                    sum += coef[base + i1] * w0[i0] * w1[i1];
                }
            }
            out.push(sum);
        }
    }
    out
}

fn zoom_linear_3d(data: &[f64], shape: [usize; 3], new_shape: [usize; 3]) -> Vec<f64> {
    let taps: Vec<Vec<([usize; 2], [f64; 2])>> = (0..3).map(|d| linear_taps(shape[d], new_shape[d])).collect();
    let (s0, s1) = (shape[1] * shape[2], shape[2]);
    let mut out = vec![0.0; new_shape.iter().product()];
    out.par_chunks_mut(new_shape[1] * new_shape[2]).enumerate().for_each(|(k0, plane)| {
        let (i0, w0) = taps[0][k0];
        for (k1, row) in plane.chunks_mut(new_shape[2]).enumerate() {
            let (i1, w1) = taps[1][k1];
            for (k2, v) in row.iter_mut().enumerate() {
                let (i2, w2) = taps[2][k2];
                let mut sum = 0.0;
                for a in 0..2 {
                    for b in 0..2 {
                        let base = i0[a] * s0 + i1[b] * s1;
                        for c in 0..2 {
                            sum += data[base + i2[c]] * w0[a] * w1[b] * w2[c];
                        }
                    }
                }
                *v = sum;
            }
        }
    });
    out
}

fn zoom_nearest_3d(data: &[f64], shape: [usize; 3], new_shape: [usize; 3]) -> Vec<f64> {
    let idx: Vec<Vec<usize>> = (0..3)
        .map(|d| {
            (0..new_shape[d])
                .map(|k| {
                    let c = source_coordinate(k, shape[d], new_shape[d]);
                    ((c + 0.5).floor().max(0.0) as usize).min(shape[d] - 1)
                })
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(new_shape.iter().product());
    for &a in &idx[0] {
        for &b in &idx[1] {
            for &c in &idx[2] {
                out.push(data[(a * shape[1] + b) * shape[2] + c]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: [f64; 12] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, -1.0, 0.0, 2.0, 9.0];

    fn as_f32(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    #[test]
    fn cubic_resize_matches_skimage_golden_values() {
        let expected: [f32; 30] = [
            -0.5244722,
            -0.035958637,
            0.7135931,
            1.375514,
            2.178903,
            2.7133512,
            1.8939708,
            2.3838692,
            3.1303062,
            3.7280939,
            4.296969,
            4.635369,
            3.93508,
            4.4399047,
            5.1585793,
            5.785598,
            6.8235574,
            7.600799,
            1.1822301,
            1.7238965,
            2.375931,
            3.308728,
            6.4762735,
            9.0,
            -1.0,
            -1.0,
            -0.42767775,
            0.741068,
            5.475906,
            9.0,
        ];
        assert_eq!(as_f32(&resize_2d(&IMAGE, [3, 4], [5, 6], 3)), expected);
    }

    #[test]
    fn linear_resize_matches_skimage_golden_values() {
        let expected: [f32; 30] = [
            0.0, 0.5, 1.1666666, 1.8333334, 2.5, 3.0, 1.6, 2.1, 2.7666667, 3.4333334, 4.2, 4.8, 4.0, 4.5, 5.1666665,
            5.8333335, 6.75, 7.5, 1.0, 1.5, 2.2666667, 3.3333333, 6.0, 8.4, -1.0, -0.5, 0.33333334, 1.6666666, 5.5,
            9.0,
        ];
        assert_eq!(as_f32(&resize_2d(&IMAGE, [3, 4], [5, 6], 1)), expected);
    }

    #[test]
    fn cubic_3d_of_a_single_plane_equals_2d_up_to_float_noise() {
        // A 1 x 3 x 4 volume zoomed to 1 x 5 x 6 runs the 3-D path with a trivial first axis.
        let three = resize_3d(&IMAGE, [1, 3, 4], [1, 5, 6], 3);
        let two = resize_2d(&IMAGE, [3, 4], [5, 6], 3);
        for (a, b) in three.iter().zip(&two) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn nearest_z_tables_match_the_golden_values() {
        assert_eq!(nearest_z_indices(95, 119)[..14], [0, 1, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 9, 10]);
        let down = nearest_z_indices(119, 95);
        assert_eq!(down[..12], [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14]);
        assert_eq!(down[90..], [113, 114, 115, 117, 118]);
        assert_eq!(nearest_z_indices(4, 2), [1, 3], "downsampling by 2 picks 2k + 1");
    }

    #[test]
    fn new_shape_rounds_half_to_even() {
        assert_eq!(
            compute_new_shape([95, 512, 512], [2.5, 0.78125, 0.78125], [2.0, 0.73046875, 0.73046875]),
            [119, 548, 548]
        );
        assert_eq!(round_half_even(37.5), 38.0);
        assert_eq!(round_half_even(36.5), 36.0);
        assert_eq!(round_half_even(-0.5), -0.0);
        assert_eq!(round_half_even(2.4999), 2.0);
    }

    #[test]
    fn separate_z_decision_follows_nnunet() {
        let target = [2.0, 0.73046875, 0.73046875];
        assert_eq!(separate_z_axis([2.5, 0.78125, 0.78125], target, None), Some(0), "3.2 > 3 in the input");
        assert_eq!(separate_z_axis([1.0, 0.7, 0.7], target, None), None, "1.43 and 2.74 are both <= 3");
        assert_eq!(separate_z_axis([0.24, 1.25, 1.25], [0.24, 1.25, 1.25], None), None, "two coarse axes");
        assert_eq!(separate_z_axis([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], Some(true)), None, "three equal axes");
        assert_eq!(separate_z_axis([5.0, 0.7, 0.7], target, Some(false)), None);
        assert_eq!(separate_z_axis([0.7, 0.7, 0.7], [0.7, 3.0, 0.7], None), Some(1), "target anisotropy decides");
    }

    #[test]
    fn unchanged_shape_is_returned_untouched() {
        let data: Vec<f32> = (0..24).map(|v| v as f32 * 0.1).collect();
        let spec = ResamplingSpec { order: 3, order_z: 0, force_separate_z: None };
        assert_eq!(resample_channel(&data, [2, 3, 4], [2, 3, 4], [3.0, 1.0, 1.0], [1.0, 1.0, 1.0], &spec), data);
    }

    #[test]
    fn constant_volumes_stay_constant_in_every_path() {
        let data = vec![4.25f32; 5 * 6 * 7];
        for (spacing, order) in [([3.5, 0.8, 0.8], 3), ([1.0, 0.9, 1.1], 3), ([3.5, 0.8, 0.8], 1), ([1.0, 1.0, 1.0], 1)]
        {
            let spec = ResamplingSpec { order, order_z: 0, force_separate_z: None };
            let out = resample_channel(&data, [5, 6, 7], [9, 4, 8], spacing, [2.0, 1.0, 1.0], &spec);
            assert_eq!(out.len(), 9 * 4 * 8);
            assert!(out.iter().all(|&v| v == 4.25), "order {order}, spacing {spacing:?}");
        }
    }
}
