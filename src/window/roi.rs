//! ROI-focused prediction (opt-in, not nnU-Net's algorithm): a cheap first pass finds the
//! foreground, and the full-quality pass runs only the tiles near it.
//!
//! The first pass uses the first fold, no mirroring and tiles that barely overlap
//! ([`COARSE_STEP`]). A tile of the full pass runs when its window, grown by [`margin`] on every
//! side, holds a voxel the first pass labelled foreground. Voxels that no selected tile covers
//! keep the first pass's logits. Every voxel whose every covering tile was selected gets exactly
//! the full pass's logits; differences can only come from foreground the first pass missed by more
//! than the margin. Everything here is pure and independent of the network runtime.

use ndarray::Array4;

use super::tiles::TileGrid;
use super::LogitScalar;

/// Step of the first pass, as a fraction of the patch: adjacent tiles, the fewest that cover.
pub const COARSE_STEP: f64 = 1.0;

/// How far (voxels per axis) around a tile's window foreground still selects it: a quarter patch.
pub fn margin(patch: [usize; 3]) -> [usize; 3] {
    patch.map(|p| p / 4)
}

/// Voxels (C order over the logits' spatial shape) whose label would not be background: some
/// class scores strictly higher than class 0, which wins ties as in the argmax.
pub fn foreground<T: LogitScalar>(logits: &Array4<T>) -> Vec<bool> {
    let classes = logits.shape()[0];
    let voxels: usize = logits.shape()[1..].iter().product();
    let flat = logits.as_slice().expect("standard layout");
    let mut best_other = vec![f32::NEG_INFINITY; voxels];
    for c in 1..classes {
        for (b, v) in best_other.iter_mut().zip(&flat[c * voxels..(c + 1) * voxels]) {
            *b = b.max(v.to_f32());
        }
    }
    best_other.iter().zip(&flat[..voxels]).map(|(&other, background)| other > background.to_f32()).collect()
}

/// The half-open range of the unpadded axis of length `n` that a tile starting at padded `start`
/// covers, grown by `grow` on both sides.
fn window(start: usize, pad_before: usize, patch: usize, grow: usize, n: usize) -> (usize, usize) {
    let lo = (start as isize - pad_before as isize - grow as isize).max(0) as usize;
    let hi = ((start + patch + grow) as isize - pad_before as isize).clamp(0, n as isize) as usize;
    (lo.min(n), hi)
}

/// For every tile of `grid` (in [`TileGrid::tiles`] order): whether its window grown by `grow`
/// holds a `foreground` voxel. One axis at a time with running counts, so the cost is a few
/// passes over the volume whatever the tile overlap.
pub fn select_tiles(grid: &TileGrid, foreground: &[bool], grow: [usize; 3]) -> Vec<bool> {
    let [n0, n1, n2] = grid.shape;
    let ranges: [Vec<(usize, usize)>; 3] = std::array::from_fn(|a| {
        grid.starts[a].iter().map(|&s| window(s, grid.pad_before[a], grid.patch[a], grow[a], grid.shape[a])).collect()
    });
    let [k0, k1, k2] = [ranges[0].len(), ranges[1].len(), ranges[2].len()];
    // Along x: for each (z, y) row and x-window, any foreground.
    let mut along_x = vec![false; n0 * n1 * k2];
    let mut prefix = vec![0u32; n2 + 1];
    for (row, out) in foreground.chunks(n2).zip(along_x.chunks_mut(k2)) {
        for (i, &f) in row.iter().enumerate() {
            prefix[i + 1] = prefix[i] + f as u32;
        }
        for (o, &(lo, hi)) in out.iter_mut().zip(&ranges[2]) {
            *o = prefix[hi] > prefix[lo];
        }
    }
    // Along y, then z: any over the window of the previous axis' answers.
    let mut along_y = vec![false; n0 * k1 * k2];
    for z in 0..n0 {
        for (j, &(lo, hi)) in ranges[1].iter().enumerate() {
            for i in 0..k2 {
                along_y[(z * k1 + j) * k2 + i] = (lo..hi).any(|y| along_x[(z * n1 + y) * k2 + i]);
            }
        }
    }
    let mut selected = Vec::with_capacity(k0 * k1 * k2);
    for &(lo, hi) in &ranges[0] {
        for j in 0..k1 {
            for i in 0..k2 {
                selected.push((lo..hi).any(|z| along_y[(z * k1 + j) * k2 + i]));
            }
        }
    }
    selected
}

/// Voxels of the unpadded grid that at least one selected tile covers.
pub fn coverage(grid: &TileGrid, selected: &[bool]) -> Vec<bool> {
    let [n0, n1, n2] = grid.shape;
    let mut covered = vec![false; n0 * n1 * n2];
    for (origin, _) in grid.tiles().zip(selected).filter(|(_, &s)| s) {
        let w: [(usize, usize); 3] =
            std::array::from_fn(|a| window(origin[a], grid.pad_before[a], grid.patch[a], 0, grid.shape[a]));
        for z in w[0].0..w[0].1 {
            for y in w[1].0..w[1].1 {
                covered[(z * n1 + y) * n2 + w[2].0..(z * n1 + y) * n2 + w[2].1].fill(true);
            }
        }
    }
    covered
}

/// Replaces the logits of voxels no selected tile covered with the first pass's.
pub fn fill_uncovered<T: LogitScalar>(logits: &mut Array4<T>, coarse: &Array4<T>, covered: &[bool]) {
    let voxels = covered.len();
    let fine = logits.as_slice_mut().expect("standard layout");
    let coarse = coarse.as_slice().expect("standard layout");
    for (fine, coarse) in fine.chunks_mut(voxels).zip(coarse.chunks(voxels)) {
        for ((f, &c), &cov) in fine.iter_mut().zip(coarse).zip(covered) {
            if !cov {
                *f = c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same selection, by scanning each grown window voxel by voxel.
    fn select_slowly(grid: &TileGrid, foreground: &[bool], grow: [usize; 3]) -> Vec<bool> {
        let [_, n1, n2] = grid.shape;
        grid.tiles()
            .map(|origin| {
                let w: [(usize, usize); 3] = std::array::from_fn(|a| {
                    window(origin[a], grid.pad_before[a], grid.patch[a], grow[a], grid.shape[a])
                });
                (w[0].0..w[0].1)
                    .any(|z| (w[1].0..w[1].1).any(|y| (w[2].0..w[2].1).any(|x| foreground[(z * n1 + y) * n2 + x])))
            })
            .collect()
    }

    #[test]
    fn separable_selection_equals_scanning_every_window() {
        for (shape, patch, step) in
            [([20, 33, 41], [8, 16, 16], 0.5), ([5, 30, 30], [8, 8, 12], 0.5), ([12, 12, 12], [4, 4, 4], 1.0)]
        {
            let grid = TileGrid::new(shape, patch, step).unwrap();
            let n: usize = shape.iter().product();
            let mut foreground = vec![false; n];
            for i in [7, n / 3, n / 2 + 5, n - 1] {
                foreground[i] = true;
            }
            for grow in [[0, 0, 0], margin(patch), [1, 3, 2]] {
                assert_eq!(select_tiles(&grid, &foreground, grow), select_slowly(&grid, &foreground, grow));
            }
            assert!(select_tiles(&grid, &vec![false; n], margin(patch)).iter().all(|&s| !s));
            assert!(coverage(&grid, &vec![true; grid.len()]).iter().all(|&c| c), "all tiles cover everything");
        }
    }

    #[test]
    fn foreground_follows_the_first_maximum_argmax() {
        let logits =
            Array4::from_shape_vec((3, 1, 1, 4), vec![1.0f32, 1.0, 0.0, 2.0, 1.0, 0.5, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0])
                .unwrap();
        assert_eq!(foreground(&logits), [false, true, false, false], "ties go to background");
    }

    #[test]
    fn uncovered_voxels_take_the_first_pass_logits() {
        let mut fine = Array4::from_elem((2, 1, 1, 3), 5.0f32);
        let coarse = Array4::from_elem((2, 1, 1, 3), -1.0f32);
        fill_uncovered(&mut fine, &coarse, &[true, false, true]);
        assert_eq!(fine.as_slice().unwrap(), &[5.0, -1.0, 5.0, 5.0, -1.0, 5.0]);
    }
}
