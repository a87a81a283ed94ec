//! Where the sliding window's tiles go (`compute_steps_for_sliding_window`) and how the volume is
//! padded to fit at least one patch.

use crate::error::{Error, Result};

/// Tile start positions along one axis of `size` voxels (`size >= patch`) for a step of
/// `step_fraction * patch`: evenly spaced, first at 0, last flush with the end, rounded half to
/// even as numpy does.
pub fn tile_starts(size: usize, patch: usize, step_fraction: f64) -> Vec<usize> {
    debug_assert!(size >= patch && patch > 0);
    let target_step = patch as f64 * step_fraction;
    let steps = ((size - patch) as f64 / target_step).ceil() as usize + 1;
    if steps == 1 {
        return vec![0];
    }
    let actual_step = (size - patch) as f64 / (steps - 1) as f64;
    (0..steps).map(|k| (actual_step * k as f64).round_ties_even() as usize).collect()
}

/// The one rule for the sliding-window step: a fraction of the patch in (0, 1] (nnU-Net's default
/// 0.5). Every surface (Rust options, C ABI, C++ binding) checks it here.
pub fn check_step_size(step_fraction: f64) -> Result<()> {
    if step_fraction > 0.0 && step_fraction <= 1.0 {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!("step size {step_fraction} is outside (0, 1]; nnU-Net's default is 0.5")))
    }
}

/// The padded grid and the tiles covering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGrid {
    /// Spatial shape of the unpadded input.
    pub shape: [usize; 3],
    /// Patch size.
    pub patch: [usize; 3],
    /// Shape after padding to at least the patch size.
    pub padded: [usize; 3],
    /// Zero voxels added before the data on each axis (the odd voxel goes after).
    pub pad_before: [usize; 3],
    /// Tile starts per axis.
    pub starts: [Vec<usize>; 3],
}

impl TileGrid {
    /// Plans tiles for `shape` with `patch` and a step of `step_fraction` of the patch.
    pub fn new(shape: [usize; 3], patch: [usize; 3], step_fraction: f64) -> Result<TileGrid> {
        check_step_size(step_fraction)?;
        let padded: [usize; 3] = std::array::from_fn(|i| shape[i].max(patch[i]));
        let pad_before: [usize; 3] = std::array::from_fn(|i| (padded[i] - shape[i]) / 2);
        let starts = std::array::from_fn(|i| tile_starts(padded[i], patch[i], step_fraction));
        Ok(TileGrid { shape, patch, padded, pad_before, starts })
    }

    /// Plans tiles for a network of `network_dims` (2 or 3) dimensions. A 2-D network
    /// (`patch = [1, Py, Px]`) sees every slice of axis 0 once, tiled in-plane as in 3-D
    /// (nnU-Net's sliding window over a 2-D configuration).
    pub fn for_network(
        shape: [usize; 3],
        patch: [usize; 3],
        step_fraction: f64,
        network_dims: usize,
    ) -> Result<TileGrid> {
        let mut grid = TileGrid::new(shape, patch, step_fraction)?;
        if network_dims == 2 {
            debug_assert_eq!(patch[0], 1);
            grid.starts[0] = (0..shape[0]).collect();
        }
        Ok(grid)
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.starts.iter().map(Vec::len).product()
    }

    /// True when there is no tile (never, for a valid grid).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tile origins, axis 0 outermost, axis 2 innermost (nnU-Net's order).
    pub fn tiles(&self) -> impl Iterator<Item = [usize; 3]> + '_ {
        self.starts[0].iter().flat_map(move |&a| {
            self.starts[1].iter().flat_map(move |&b| self.starts[2].iter().map(move |&c| [a, b, c]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_starts_match_the_golden_values() {
        assert_eq!(tile_starts(110, 64, 0.5), [0, 23, 46]);
        assert_eq!(tile_starts(109, 64, 0.5), [0, 22, 45]);
        assert_eq!(tile_starts(119, 64, 0.5), [0, 28, 55]);
        assert_eq!(tile_starts(548, 128, 0.5), [0, 60, 120, 180, 240, 300, 360, 420]);
        assert_eq!(tile_starts(548, 192, 0.5), [0, 89, 178, 267, 356]);
        assert_eq!(tile_starts(491, 128, 0.5), [0, 60, 121, 182, 242, 302, 363]);
        assert_eq!(tile_starts(64, 64, 0.5), [0]);
    }

    #[test]
    fn pancreas_example_has_120_tiles_and_pads_the_odd_voxel_after() {
        let grid = TileGrid::new([119, 548, 548], [64, 128, 192], 0.5).unwrap();
        assert_eq!(grid.len(), 120);
        let small = TileGrid::new([13, 40, 41], [16, 32, 48], 0.5).unwrap();
        assert_eq!(small.padded, [16, 40, 48]);
        assert_eq!(small.pad_before, [1, 0, 3]);
        assert_eq!(small.tiles().next(), Some([0, 0, 0]));
    }

    #[test]
    fn every_voxel_is_covered_for_any_step() {
        for step in [0.1, 0.33, 0.5, 0.75, 1.0] {
            for size in 16..60 {
                let starts = tile_starts(size, 16, step);
                assert_eq!(*starts.first().unwrap(), 0);
                assert_eq!(starts.last().unwrap() + 16, size, "last tile flush with the end");
                assert!(starts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 16), "{size} {step} {starts:?}");
            }
        }
    }

    #[test]
    fn a_2d_network_runs_every_slice_once() {
        let grid = TileGrid::for_network([10, 72, 80], [1, 64, 64], 0.5, 2).unwrap();
        assert_eq!(grid.starts, [(0..10).collect::<Vec<_>>(), vec![0, 8], vec![0, 16]]);
        assert_eq!(grid.len(), 40);
        assert_eq!(grid.pad_before, [0, 0, 0]);
        let small = TileGrid::for_network([10, 43, 47], [1, 64, 64], 0.5, 2).unwrap();
        assert_eq!((small.len(), small.padded, small.pad_before), (10, [10, 64, 64], [0, 10, 8]));
    }

    #[test]
    fn bad_step_sizes_are_refused() {
        for step in [0.0, -0.5, 1.5, f64::NAN] {
            assert!(TileGrid::new([10, 10, 10], [8, 8, 8], step).is_err(), "{step}");
        }
    }
}
