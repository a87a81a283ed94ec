//! Crop to the nonzero region (`crop_to_nonzero`), fused with the transpose.

use std::collections::VecDeque;

use ndarray::Array4;
use rayon::prelude::*;

use crate::error::Result;
use crate::volume::VolumeView;

/// Bounding box (half-open, transposed axes) of voxels where any channel is nonzero; the whole
/// image when there is none. With `fill_mask`, also the crop's nonzero mask with holes filled
/// (C order over the cropped, transposed grid), which ZScore normalisation with
/// `use_mask_for_norm` needs.
///
/// Filling holes never changes the box, so it is done on the crop only: every voxel outside the
/// box is background connected to the image border, so a zero region touching the crop's
/// border is not a hole, exactly as in the full image.
pub fn nonzero_box(volume: &VolumeView<'_>, tf: [usize; 3], fill_mask: bool) -> ([[usize; 2]; 3], Option<Vec<bool>>) {
    let [dx, dy, dz] = volume.dims();
    let input_shape = [dz, dy, dx];
    let n = volume.voxels_per_channel();
    let data = volume.data();
    let nonzero = |v: usize| (0..volume.channels()).any(|c| data.get_f32(c * n + v) != 0.0);
    // Per z plane: the (y, x) extent of nonzero voxels over all channels, one row at a time.
    let plane_extents: Vec<Option<[[usize; 2]; 2]>> = (0..dz)
        .into_par_iter()
        .map(|z| {
            let mut extent: Option<[[usize; 2]; 2]> = None;
            for y in 0..dy {
                for c in 0..volume.channels() {
                    let start = c * n + (z * dy + y) * dx;
                    if let Some((first, last)) = data.nonzero_extent(start..start + dx) {
                        let (first, last) = (first - start, last - start);
                        let e = extent.get_or_insert([[y, y], [first, last]]);
                        e[0] = [e[0][0].min(y), e[0][1].max(y)];
                        e[1] = [e[1][0].min(first), e[1][1].max(last)];
                    }
                }
            }
            extent
        })
        .collect();
    let mut lo = input_shape;
    let mut hi = [0usize; 3];
    for (z, extent) in plane_extents.iter().enumerate() {
        if let Some([ys, xs]) = extent {
            for (a, [first, last]) in [[z, z], *ys, *xs].into_iter().enumerate() {
                lo[a] = lo[a].min(first);
                hi[a] = hi[a].max(last + 1);
            }
        }
    }
    let input_box: [[usize; 2]; 3] =
        if hi[0] == 0 { std::array::from_fn(|a| [0, input_shape[a]]) } else { std::array::from_fn(|a| [lo[a], hi[a]]) };
    let bbox: [[usize; 2]; 3] = std::array::from_fn(|i| input_box[tf[i]]);
    if !fill_mask {
        return (bbox, None);
    }
    let shape: [usize; 3] = std::array::from_fn(|i| bbox[i][1] - bbox[i][0]);
    let strides = input_strides(volume);
    let rows = CropRows::new(shape, &bbox, tf, strides);
    let mut mask = vec![false; shape.iter().product()];
    for (r, row) in mask.chunks_mut(shape[2]).enumerate() {
        let start = rows.start(r);
        for (k, m) in row.iter_mut().enumerate() {
            *m = nonzero(start + k * rows.stride());
        }
    }
    fill_holes(&mut mask, shape);
    (bbox, Some(mask))
}

/// Float32 copy of the crop box, channels first, spatial axes transposed.
pub fn crop_transposed(volume: &VolumeView<'_>, tf: [usize; 3], bbox: &[[usize; 2]; 3]) -> Result<Array4<f32>> {
    let shape: [usize; 3] = std::array::from_fn(|i| bbox[i][1] - bbox[i][0]);
    let n = volume.voxels_per_channel();
    let strides = input_strides(volume);
    let data = volume.data();
    let voxels = shape.iter().product::<usize>();
    let rows = CropRows::new(shape, bbox, tf, strides);
    let mut out = crate::memory::try_filled(volume.channels() * voxels, 0f32, "the cropped input")?;
    let rows_per_channel = shape[0] * shape[1];
    out.par_chunks_mut(shape[2]).enumerate().for_each(|(r, row)| {
        let (c, r) = (r / rows_per_channel, r % rows_per_channel);
        data.read_f32(c * n + rows.start(r), rows.stride(), row);
    });
    Ok(Array4::from_shape_vec((volume.channels(), shape[0], shape[1], shape[2]), out).expect("sizes match"))
}

/// Where the rows of a transposed crop lie in the input buffer: row `r` (C order over the crop's
/// first two axes) starts at offset `start(r)`, and its voxels follow `stride()` apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CropRows {
    rows_per_plane: usize,
    origin: usize,
    strides: [usize; 3],
}

impl CropRows {
    /// Rows of the crop `bbox` (shape `shape`, transposed axes `tf`) of an input with (z, y, x)
    /// strides `input_strides`.
    pub(crate) fn new(shape: [usize; 3], bbox: &[[usize; 2]; 3], tf: [usize; 3], input_strides: [usize; 3]) -> Self {
        let strides: [usize; 3] = std::array::from_fn(|i| input_strides[tf[i]]);
        let origin = (0..3).map(|i| bbox[i][0] * strides[i]).sum();
        CropRows { rows_per_plane: shape[1], origin, strides }
    }

    /// Input offset of the first voxel of row `r`.
    #[inline]
    pub(crate) fn start(&self, r: usize) -> usize {
        self.origin + (r / self.rows_per_plane) * self.strides[0] + (r % self.rows_per_plane) * self.strides[1]
    }

    /// Input distance between neighbours along a row.
    #[inline]
    pub(crate) fn stride(&self) -> usize {
        self.strides[2]
    }
}

/// Strides of the input's (z, y, x) axes.
pub(crate) fn input_strides(volume: &VolumeView<'_>) -> [usize; 3] {
    let [dx, dy, _] = volume.dims();
    [dy * dx, dx, 1]
}

/// `scipy.ndimage.binary_fill_holes` with its default structure: background voxels that are not
/// face-connected (6-neighbourhood) to the array border become foreground.
pub fn fill_holes(mask: &mut [bool], shape: [usize; 3]) {
    let [a, b, c] = shape;
    let mut outside = vec![false; mask.len()];
    let mut queue = VecDeque::new();
    let index = |i: usize, j: usize, k: usize| (i * b + j) * c + k;
    for i in 0..a {
        for j in 0..b {
            for k in 0..c {
                let on_border = i == 0 || j == 0 || k == 0 || i + 1 == a || j + 1 == b || k + 1 == c;
                let at = index(i, j, k);
                if on_border && !mask[at] {
                    outside[at] = true;
                    queue.push_back((i, j, k));
                }
            }
        }
    }
    while let Some((i, j, k)) = queue.pop_front() {
        let neighbours = [
            (i.wrapping_sub(1), j, k),
            (i + 1, j, k),
            (i, j.wrapping_sub(1), k),
            (i, j + 1, k),
            (i, j, k.wrapping_sub(1)),
            (i, j, k + 1),
        ];
        for (ni, nj, nk) in neighbours {
            if ni < a && nj < b && nk < c {
                let at = index(ni, nj, nk);
                if !mask[at] && !outside[at] {
                    outside[at] = true;
                    queue.push_back((ni, nj, nk));
                }
            }
        }
    }
    for (m, o) in mask.iter_mut().zip(outside) {
        *m = !o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, VoxelData};

    #[test]
    fn box_of_nonzero_voxels_in_transposed_order() {
        // dims (x, y, z) = (5, 4, 3); one nonzero voxel at x=3, y=1, z=2 and one at x=1, y=2, z=2.
        let mut data = vec![0i16; 60];
        data[(2 * 4 + 1) * 5 + 3] = 7;
        data[(2 * 4 + 2) * 5 + 1] = -3;
        let view = VolumeView::new(VoxelData::I16(&data), [5, 4, 3], 1, Geometry::with_spacing([1.0; 3])).unwrap();
        let (bbox, mask) = nonzero_box(&view, [0, 1, 2], false);
        assert_eq!(bbox, [[2, 3], [1, 3], [1, 4]]);
        assert!(mask.is_none());
        let (swapped, _) = nonzero_box(&view, [2, 0, 1], false);
        assert_eq!(swapped, [[1, 4], [2, 3], [1, 3]]);
        let crop = crop_transposed(&view, [2, 0, 1], &swapped).unwrap();
        assert_eq!(crop.shape(), &[1, 3, 1, 2]);
        assert_eq!(crop[[0, 2, 0, 0]], 7.0, "x=3 is the third of x 1..4, y=1 the first of y 1..3");
        assert_eq!(crop[[0, 0, 0, 1]], -3.0);
    }

    #[test]
    fn empty_mask_keeps_the_whole_image() {
        let data = vec![0f32; 24];
        let view = VolumeView::new(VoxelData::F32(&data), [4, 3, 2], 1, Geometry::with_spacing([1.0; 3])).unwrap();
        assert_eq!(nonzero_box(&view, [0, 1, 2], false).0, [[0, 2], [0, 3], [0, 4]]);
    }

    #[test]
    fn holes_are_filled_but_border_connected_background_is_not() {
        // A 5x5x5 shell with a hollow centre, plus a notch that opens one face to the border.
        let shape = [5, 5, 5];
        let mut mask = vec![false; 125];
        for i in 1..4 {
            for j in 1..4 {
                for k in 1..4 {
                    mask[(i * 5 + j) * 5 + k] = (i, j, k) != (2, 2, 2);
                }
            }
        }
        let mut closed = mask.clone();
        fill_holes(&mut closed, shape);
        assert!(closed[(2 * 5 + 2) * 5 + 2], "enclosed voxel is filled");
        assert!(!closed[0], "outside stays background");
        mask[(2 * 5 + 2) * 5 + 1] = false; // open the cavity towards x = 0 through (2, 2, 1)
        fill_holes(&mut mask, shape);
        assert!(!mask[(2 * 5 + 2) * 5 + 2], "a cavity connected to the border is not a hole");
    }
}
