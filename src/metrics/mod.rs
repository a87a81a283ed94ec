//! Segmentation and classification metrics: Dice, normalised surface distance (NSD), robust
//! Hausdorff distance (HD95) and mean symmetric surface distance (MSD) per region, their
//! statistics over cases, and case-level classification metrics. Pure Rust, no ONNX Runtime.
//!
//! # Definitions
//!
//! A *region* ([`Region`]) is a set of labels; its mask in a label map is the voxels holding one
//! of them. For the predicted mask `P` and the reference mask `R` of a region:
//!
//! * **Dice** = `2·|P ∩ R| / (|P| + |R|)`, from voxel counts.
//! * **Surfaces** are the surface elements (surfels) of the DeepMind `surface-distance` package:
//!   one per voxel corner whose 2×2×2 neighbourhood is neither all inside nor all outside, with
//!   the area of the marching-cubes surface inside that cell under the voxel spacing (see
//!   [`surface`]). The distance of a surfel to the other surface is the Euclidean distance in mm
//!   from its corner to the nearest surfel corner of the other mask, from an exact distance
//!   transform ([`edt`]). Everything is in physical space, with anisotropic spacing.
//! * **NSD** at tolerance `τ` = (area of the surfels of `P` within `τ` of `R`'s surface + area
//!   of the surfels of `R` within `τ` of `P`'s surface) / (area of `P`'s surface + area of `R`'s
//!   surface); "within" is `distance ≤ τ`.
//! * **HD95** = the larger of the two directed area-weighted 95th percentiles; a directed
//!   percentile is the distance of the first surfel, in order of increasing distance, at which
//!   the cumulative area reaches 95 % of the total area.
//! * **MSD** (mean symmetric surface distance, ASSD) = `(Σ_P d·a + Σ_R d·a) / (Σ_P a + Σ_R a)`:
//!   the area-weighted mean distance over the surfels of both masks. The two directed means are
//!   reported as well ([`RegionMetrics::msd_ref_to_pred`], [`RegionMetrics::msd_pred_to_ref`]).
//!
//! # Empty masks
//!
//! * Both masks empty: Dice 1, NSD 1, HD95 0, MSD 0.
//! * Exactly one empty: Dice 0, NSD 0, HD95 and MSD NaN in the case's results; statistics over
//!   cases count the image diagonal instead (see [`aggregate`](mod@aggregate)).
//!
//! # Example
//!
//! ```
//! use nnunet_rt::metrics::{evaluate_labels, parse_regions, LabelBuffer, LabelVolume};
//!
//! let dims = [4, 4, 4];
//! let mut reference = vec![0u8; 64];
//! let mut pred = vec![0u8; 64];
//! for (i, (r, p)) in reference.iter_mut().zip(&mut pred).enumerate() {
//!     let (x, y, z) = (i % 4, (i / 4) % 4, i / 16);
//!     if (1..3).contains(&y) && (1..3).contains(&z) {
//!         *r = if x == 1 { 2 } else if x == 2 { 1 } else { 0 };
//!         *p = if (1..3).contains(&x) { 1 } else { 0 };
//!     }
//! }
//! let spacing = [0.8, 0.8, 2.5];
//! let pred = LabelVolume::new(LabelBuffer::U8(&pred), dims, spacing)?;
//! let reference = LabelVolume::new(LabelBuffer::U8(&reference), dims, spacing)?;
//! let regions = parse_regions("pancreas=1,2;lesion=2")?;
//! let case = evaluate_labels(&pred, &reference, &regions)?;
//! assert_eq!(case.regions[0].dice, 1.0);
//! assert_eq!(case.regions[1].dice, 0.0); // no lesion predicted
//! assert!(case.regions[1].hd95.is_nan());
//! # Ok::<(), nnunet_rt::Error>(())
//! ```

pub mod aggregate;
mod case;
pub mod classification;
pub mod edt;
mod labels;
pub mod surface;

pub use aggregate::{aggregate, complete_default_regions, RegionSummary, Stats, Summary};
pub use case::{
    check_pair, evaluate_labels, CaseMetrics, Emptiness, RegionMetrics, HAUSDORFF_PERCENT, SPACING_TOLERANCE,
};
pub use classification::{classification_report, ClassMetrics, ClassificationReport};
pub use labels::{
    default_regions, parse_regions, LabelBuffer, LabelVolume, Region, Tolerances, DEFAULT_NSD_TOLERANCE_MM,
};
pub use surface::{surfel_area_table, SurfaceDistances, Surfel};
