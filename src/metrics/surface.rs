//! Surface elements of a binary mask and the distances between two surfaces.
//!
//! # Surface elements
//!
//! A surface is sampled on the grid of voxel *corners*: the points half a voxel away from voxel
//! centres along every axis, including the corners outside the outermost voxels (the volume is
//! treated as surrounded by background, so a mask touching the border of the volume has a
//! surface there). Each corner looks at its 2×2×2 neighbourhood of voxels, whose inside/outside
//! pattern is an 8-bit neighbourhood code (corner offset `(x, y, z) ∈ {0, 1}³` is bit
//! `x + 2y + 4z`). Codes 0 (all outside) and 255 (all inside) are not on the surface; every other
//! corner is a *surface element* (surfel) whose area is the area of the marching-cubes surface
//! inside that 2×2×2 cell, in mm².
//!
//! The marching-cubes surface of a cell is built from the midpoints of the cell edges whose two
//! ends differ. On each cell face the midpoints are joined by segments that separate inside from
//! outside corners; on a face with two diagonal inside corners (the ambiguous face) the segments
//! cut off the corners of the minority: the inside corners when at most four corners of the cell
//! are inside, else the outside corners. The segments close into polygons of 3 to 6 vertices;
//! each polygon is cut into a fan of triangles from a vertex that has a non-adjacent vertex on a
//! parallel cell edge (any vertex when none has). Under a voxel spacing `(sx, sy, sz)`, a triangle
//! with area vector `n` in voxel units has area `|(sy·sz·n_x, sx·sz·n_y, sx·sy·n_z)|`, and the
//! surfel area is the sum over its triangles. These areas are those of the lookup table of the
//! DeepMind `surface-distance` package, for every code and every spacing (the test suite checks
//! all 256 codes against that package's table at several anisotropic spacings).
//!
//! # Surface distances
//!
//! The distance of a surfel of one mask to the other mask's surface is the Euclidean distance, in
//! mm, from its corner to the nearest surfel corner of the other mask, from an exact distance
//! transform ([`crate::metrics::edt`]). All work is done inside the bounding box of the union of
//! both masks grown by one corner, which holds every surfel of either mask.

use std::sync::OnceLock;

use rayon::prelude::*;
use serde::Serialize;

use super::edt;
use crate::error::{Error, Result};

/// One surface element: its distance to the other surface and its area.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Surfel {
    /// Distance in mm from this surfel's corner to the nearest surfel corner of the other mask
    /// (`+∞` when the other mask is empty).
    pub distance_mm: f64,
    /// Area of the surface inside this corner's 2×2×2 cell, in mm².
    pub area_mm2: f64,
}

/// The surfels of a reference and a predicted mask, each with its distance to the other surface,
/// sorted by increasing distance (then area).
#[derive(Debug, Clone, Default)]
pub struct SurfaceDistances {
    /// Surfels of the reference mask, with their distance to the predicted surface.
    pub ref_to_pred: Vec<Surfel>,
    /// Surfels of the predicted mask, with their distance to the reference surface.
    pub pred_to_ref: Vec<Surfel>,
}

impl SurfaceDistances {
    /// Surfels and distances of two binary masks of `dims` (x, y, z; x fastest) voxels of
    /// `spacing` (x, y, z) mm.
    ///
    /// Fails with [`crate::ErrorKind::ShapeMismatch`] when a mask does not hold `x·y·z` voxels
    /// and with [`crate::ErrorKind::InvalidArgument`] on a spacing that is not finite and > 0.
    pub fn compute(pred: &[bool], reference: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Result<Self> {
        let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        for (name, mask) in [("predicted", pred), ("reference", reference)] {
            if n != Some(mask.len()) {
                return Err(Error::shape_mismatch(format!(
                    "{name} mask holds {} voxels but dims {dims:?} (x, y, z) need {}",
                    mask.len(),
                    n.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string())
                )));
            }
        }
        check_spacing(spacing)?;
        let [nx, ny, _] = dims;
        let bbox = pred
            .par_iter()
            .zip(reference.par_iter())
            .enumerate()
            .filter(|(_, (&p, &r))| p || r)
            .map(|(i, _)| {
                let p = [i % nx, (i / nx) % ny, i / (nx * ny)];
                BoundingBox { min: p, max: p }
            })
            .reduce_with(BoundingBox::union);
        let Some(bbox) = bbox else {
            return Ok(SurfaceDistances::default());
        };
        let grid = PaddedPair::build(bbox, |x, y, z| {
            let i = x + nx * (y + ny * z);
            (pred[i], reference[i])
        });
        Ok(grid.distances(spacing))
    }

    /// Total surface area of the reference mask, mm².
    pub fn ref_area_mm2(&self) -> f64 {
        self.ref_to_pred.iter().map(|s| s.area_mm2).sum()
    }

    /// Total surface area of the predicted mask, mm².
    pub fn pred_area_mm2(&self) -> f64 {
        self.pred_to_ref.iter().map(|s| s.area_mm2).sum()
    }

    /// Area-weighted `percent` percentile of one direction's distances: the distance of the first
    /// surfel (in sorted order) at which the cumulative area divided by the total area reaches
    /// `percent / 100`. `+∞` when `surfels` is empty.
    pub fn directed_percentile(surfels: &[Surfel], percent: f64) -> f64 {
        if surfels.is_empty() {
            return f64::INFINITY;
        }
        let total: f64 = surfels.iter().map(|s| s.area_mm2).sum();
        let target = percent / 100.0;
        let mut cumulative = 0.0;
        for s in surfels {
            cumulative += s.area_mm2;
            if cumulative / total >= target {
                return s.distance_mm;
            }
        }
        surfels[surfels.len() - 1].distance_mm
    }

    /// Robust Hausdorff distance: the larger of the two directed area-weighted `percent`
    /// percentiles (`percent = 95` gives HD95). `+∞` when either mask is empty.
    pub fn hausdorff(&self, percent: f64) -> f64 {
        Self::directed_percentile(&self.ref_to_pred, percent).max(Self::directed_percentile(&self.pred_to_ref, percent))
    }

    /// Area-weighted mean distances `(reference → predicted, predicted → reference)`, mm.
    /// A direction without surfels gives NaN.
    pub fn directed_averages(&self) -> (f64, f64) {
        (weighted_mean(&self.ref_to_pred), weighted_mean(&self.pred_to_ref))
    }

    /// Mean symmetric surface distance (ASSD), mm: the area-weighted mean over the surfels of
    /// both masks, `(Σ d·a over reference surfels + Σ d·a over predicted surfels) / (total
    /// reference area + total predicted area)`. NaN when both masks are empty, `+∞` when one is.
    pub fn mean_symmetric(&self) -> f64 {
        let (sum_r, area_r) = weighted_sums(&self.ref_to_pred);
        let (sum_p, area_p) = weighted_sums(&self.pred_to_ref);
        (sum_r + sum_p) / (area_r + area_p)
    }

    /// Normalised surface distance (surface Dice) at `tolerance_mm`: the area of the surfels of
    /// both masks within `tolerance_mm` (inclusive) of the other surface, divided by the total
    /// area of both surfaces. NaN when both masks are empty.
    pub fn surface_dice(&self, tolerance_mm: f64) -> f64 {
        let within = |surfels: &[Surfel]| -> f64 {
            surfels.iter().filter(|s| s.distance_mm <= tolerance_mm).map(|s| s.area_mm2).sum()
        };
        (within(&self.ref_to_pred) + within(&self.pred_to_ref)) / (self.ref_area_mm2() + self.pred_area_mm2())
    }
}

fn weighted_sums(surfels: &[Surfel]) -> (f64, f64) {
    surfels.iter().fold((0.0, 0.0), |(s, a), x| (s + x.distance_mm * x.area_mm2, a + x.area_mm2))
}

fn weighted_mean(surfels: &[Surfel]) -> f64 {
    let (sum, area) = weighted_sums(surfels);
    sum / area
}

pub(crate) fn check_spacing(spacing: [f64; 3]) -> Result<()> {
    if let Some(s) = spacing.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::invalid_argument(format!(
            "spacing {spacing:?} contains {s}; every spacing must be a finite number > 0 mm"
        )));
    }
    Ok(())
}

/// Inclusive voxel bounding box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoundingBox {
    pub min: [usize; 3],
    pub max: [usize; 3],
}

impl BoundingBox {
    pub fn union(self, other: BoundingBox) -> BoundingBox {
        BoundingBox {
            min: std::array::from_fn(|a| self.min[a].min(other.min[a])),
            max: std::array::from_fn(|a| self.max[a].max(other.max[a])),
        }
    }

    fn extent(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.max[a] - self.min[a] + 1)
    }
}

/// Both masks cropped to a bounding box and padded with one background voxel on every side,
/// one byte per voxel (0 or 1), x fastest.
pub(crate) struct PaddedPair {
    dims: [usize; 3],
    pred: Vec<u8>,
    reference: Vec<u8>,
}

impl PaddedPair {
    /// Crops to `bbox`; `at(x, y, z)` gives (in prediction, in reference) for a voxel of the box.
    pub fn build(bbox: BoundingBox, at: impl Fn(usize, usize, usize) -> (bool, bool) + Sync) -> Self {
        let e = bbox.extent();
        let dims = [e[0] + 2, e[1] + 2, e[2] + 2];
        let plane = dims[0] * dims[1];
        let mut pred = vec![0u8; plane * dims[2]];
        let mut reference = vec![0u8; plane * dims[2]];
        pred.par_chunks_mut(plane)
            .zip(reference.par_chunks_mut(plane))
            .enumerate()
            .filter(|(pz, _)| *pz >= 1 && *pz <= e[2])
            .for_each(|(pz, (p_slice, r_slice))| {
                let z = bbox.min[2] + pz - 1;
                for py in 1..=e[1] {
                    let y = bbox.min[1] + py - 1;
                    for px in 1..=e[0] {
                        let (p, r) = at(bbox.min[0] + px - 1, y, z);
                        p_slice[px + dims[0] * py] = p as u8;
                        r_slice[px + dims[0] * py] = r as u8;
                    }
                }
            });
        PaddedPair { dims, pred, reference }
    }

    /// Builds from already padded buffers (`dims` include the padding).
    pub fn from_parts(dims: [usize; 3], pred: Vec<u8>, reference: Vec<u8>) -> Self {
        PaddedPair { dims, pred, reference }
    }

    /// Surfels of both masks and their distances to the other surface.
    pub fn distances(self, spacing: [f64; 3]) -> SurfaceDistances {
        let corner_dims = [self.dims[0] - 1, self.dims[1] - 1, self.dims[2] - 1];
        let (pred_codes, ref_codes) = rayon::join(
            || neighbourhood_codes(&self.pred, self.dims),
            || neighbourhood_codes(&self.reference, self.dims),
        );
        drop(self);
        let areas = surfel_area_table(spacing);
        // One distance grid, reused for both directions.
        let mut grid = Vec::new();
        let ref_to_pred = directed(&ref_codes, &pred_codes, corner_dims, spacing, &areas, &mut grid);
        let pred_to_ref = directed(&pred_codes, &ref_codes, corner_dims, spacing, &areas, &mut grid);
        SurfaceDistances { ref_to_pred, pred_to_ref }
    }
}

/// Neighbourhood code of every corner of a padded mask: the corner grid has one point less than
/// the padded grid along every axis; corner `c` sees the voxels `c + {0, 1}³` of the padded grid.
fn neighbourhood_codes(mask: &[u8], dims: [usize; 3]) -> Vec<u8> {
    let [px, py, _] = dims;
    let [cx, cy, cz] = [dims[0] - 1, dims[1] - 1, dims[2] - 1];
    let mut codes = vec![0u8; cx * cy * cz];
    codes.par_chunks_mut(cx * cy).enumerate().for_each(|(z, slice)| {
        for y in 0..cy {
            let row = |dy: usize, dz: usize| &mask[px * ((y + dy) + py * (z + dz))..][..px];
            let (r00, r10, r01, r11) = (row(0, 0), row(1, 0), row(0, 1), row(1, 1));
            // Bits of the (y, z) offsets for one x column: y adds 2, z adds 4 to the bit index.
            let column = |x: usize| r00[x] | (r10[x] << 2) | (r01[x] << 4) | (r11[x] << 6);
            let out = &mut slice[cx * y..][..cx];
            let mut left = column(0);
            for (x, code) in out.iter_mut().enumerate() {
                let right = column(x + 1);
                *code = left | (right << 1);
                left = right;
            }
        }
    });
    codes
}

/// Surfels of `from_codes` with their distance to the nearest surfel corner of `to_codes`;
/// `grid` is scratch space for the distance transform.
fn directed(
    from_codes: &[u8],
    to_codes: &[u8],
    dims: [usize; 3],
    spacing: [f64; 3],
    areas: &[f64; 256],
    grid: &mut Vec<f64>,
) -> Vec<Surfel> {
    let on_surface = |c: u8| c != 0 && c != 255;
    if !from_codes.par_iter().any(|&c| on_surface(c)) {
        return Vec::new();
    }
    grid.resize(to_codes.len(), 0.0);
    grid.par_iter_mut()
        .zip(to_codes.par_iter())
        .for_each(|(g, &c)| *g = if on_surface(c) { 0.0 } else { f64::INFINITY });
    edt::transform_in_place(grid, dims, spacing);
    let mut surfels: Vec<Surfel> = from_codes
        .par_iter()
        .zip(grid.par_iter())
        .filter(|(&c, _)| on_surface(c))
        .map(|(&c, &d2)| Surfel { distance_mm: d2.sqrt(), area_mm2: areas[c as usize] })
        .collect();
    surfels
        .par_sort_unstable_by(|a, b| a.distance_mm.total_cmp(&b.distance_mm).then(a.area_mm2.total_cmp(&b.area_mm2)));
    surfels
}

/// Area in mm² of the surface element of every neighbourhood code (bit `x + 2y + 4z` for the
/// corner at offset `(x, y, z)`) under a voxel spacing of `spacing` (x, y, z) mm. Codes 0 and
/// 255 have area 0. See the module documentation for the construction.
pub fn surfel_area_table(spacing: [f64; 3]) -> [f64; 256] {
    let [sx, sy, sz] = spacing;
    let scale = [sy * sz, sx * sz, sx * sy];
    let triangles = triangle_area_vectors();
    std::array::from_fn(|code| {
        triangles[code]
            .iter()
            .map(|n| ((n[0] * scale[0]).powi(2) + (n[1] * scale[1]).powi(2) + (n[2] * scale[2]).powi(2)).sqrt())
            .sum()
    })
}

/// Area vectors (half the cross product, voxel units) of the triangles of every code.
fn triangle_area_vectors() -> &'static [Vec<[f64; 3]>] {
    static TABLE: OnceLock<Vec<Vec<[f64; 3]>>> = OnceLock::new();
    TABLE.get_or_init(|| (0..256).map(|code| cell_triangles(code as u8)).collect())
}

/// A cell edge: the corner with the smaller coordinate and the axis it runs along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CellEdge {
    corner: usize,
    axis: usize,
}

fn corner_coords(c: usize) -> [usize; 3] {
    [c & 1, (c >> 1) & 1, (c >> 2) & 1]
}

/// The marching-cubes triangles of the 2×2×2 cell with inside pattern `code`.
fn cell_triangles(code: u8) -> Vec<[f64; 3]> {
    let inside = |c: usize| (code >> c) & 1 == 1;
    let edges: Vec<CellEdge> = (0..8)
        .flat_map(|c| (0..3).map(move |axis| CellEdge { corner: c, axis }))
        .filter(|e| corner_coords(e.corner)[e.axis] == 0)
        .collect();
    let other_end = |e: CellEdge| e.corner | (1 << e.axis);
    let is_cut = |e: CellEdge| inside(e.corner) != inside(other_end(e));
    let separate_inside = code.count_ones() <= 4;

    // Segments between cut edges, face by face; each cut edge gets exactly two neighbours.
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for face_axis in 0..3 {
        for value in 0..2 {
            let on_face = |c: usize| corner_coords(c)[face_axis] == value;
            let face_edges: Vec<usize> =
                (0..edges.len()).filter(|&i| edges[i].axis != face_axis && on_face(edges[i].corner)).collect();
            let cut: Vec<usize> = face_edges.iter().copied().filter(|&i| is_cut(edges[i])).collect();
            let mut link = |a: usize, b: usize| {
                neighbours[a].push(b);
                neighbours[b].push(a);
            };
            match cut.len() {
                0 => {}
                2 => link(cut[0], cut[1]),
                4 => {
                    for c in (0..8).filter(|&c| on_face(c) && inside(c) == separate_inside) {
                        let touching: Vec<usize> =
                            cut.iter().copied().filter(|&i| edges[i].corner == c || other_end(edges[i]) == c).collect();
                        link(touching[0], touching[1]);
                    }
                }
                n => unreachable!("a square face has {n} cut edges"),
            }
        }
    }

    let midpoint = |e: CellEdge| -> [f64; 3] {
        let mut p = corner_coords(e.corner).map(|v| v as f64);
        p[e.axis] += 0.5;
        p
    };
    let mut visited = vec![false; edges.len()];
    let mut triangles = Vec::new();
    for start in 0..edges.len() {
        if visited[start] || neighbours[start].is_empty() {
            continue;
        }
        let mut polygon = vec![start];
        visited[start] = true;
        let mut current = start;
        while let Some(&next) = neighbours[current].iter().find(|&&n| !visited[n]) {
            visited[next] = true;
            polygon.push(next);
            current = next;
        }
        let n = polygon.len();
        let parallel_partner = |v: usize| {
            (0..n).any(|w| {
                w != v && w != (v + 1) % n && w != (v + n - 1) % n && edges[polygon[w]].axis == edges[polygon[v]].axis
            })
        };
        let hub = (0..n).find(|&v| parallel_partner(v)).unwrap_or(0);
        let points: Vec<[f64; 3]> = (0..n).map(|k| midpoint(edges[polygon[(hub + k) % n]])).collect();
        for t in 1..n - 1 {
            let (a, b, c) = (points[0], points[t], points[t + 1]);
            let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
            triangles.push([
                0.5 * (u[1] * v[2] - u[2] * v[1]),
                0.5 * (u[2] * v[0] - u[0] * v[2]),
                0.5 * (u[0] * v[1] - u[1] * v[0]),
            ]);
        }
    }
    triangles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_codes_have_the_expected_areas() {
        let t = surfel_area_table([1.0, 1.0, 1.0]);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[255], 0.0);
        // One corner: the triangle through three edge midpoints, side √2/2.
        let corner = 3f64.sqrt() / 8.0;
        for c in 0..8 {
            assert!((t[1 << c] - corner).abs() < 1e-12);
            assert!((t[255 ^ (1 << c)] - corner).abs() < 1e-12);
        }
        // Half the cell inside (a face's four corners): a unit square.
        assert!((t[0b0000_1111] - 1.0).abs() < 1e-12);
        assert!((t[0b0101_0101] - 1.0).abs() < 1e-12);
        // Anisotropic: a plane normal to z spans sx·sy.
        let t = surfel_area_table([0.5, 2.0, 3.0]);
        assert!((t[0b0000_1111] - 1.0).abs() < 1e-12);
        assert!((t[0b0011_0011] - 0.5 * 3.0).abs() < 1e-12);
        assert!((t[0b0101_0101] - 2.0 * 3.0).abs() < 1e-12);
    }

    #[test]
    fn complementary_codes_have_equal_areas() {
        for spacing in [[1.0, 1.0, 1.0], [0.7, 0.8, 2.5], [3.0, 1.0, 0.4]] {
            let t = surfel_area_table(spacing);
            for code in 0..256 {
                assert!((t[code] - t[255 - code]).abs() < 1e-12, "code {code}");
            }
        }
    }

    #[test]
    fn identical_masks_are_at_distance_zero() {
        let dims = [5, 5, 3];
        let mut mask = vec![false; 75];
        for y in 1..4 {
            for x in 1..4 {
                mask[x + 5 * (y + 5)] = true;
            }
        }
        let d = SurfaceDistances::compute(&mask, &mask, dims, [1.0, 1.0, 1.0]).unwrap();
        assert!(d.ref_to_pred.iter().all(|s| s.distance_mm == 0.0));
        assert_eq!(d.ref_to_pred.len(), d.pred_to_ref.len());
        assert_eq!(d.surface_dice(0.0), 1.0);
        assert_eq!(d.hausdorff(95.0), 0.0);
        assert!(d.ref_area_mm2() > 0.0);
    }
}
