//! The checks behind the fuzz targets, one function per target, shared with the stable test
//! suite: `tests/fuzz_inputs.rs` runs every committed seed and every input that once failed
//! (fuzz/regressions/<target>/) through the same function, so `cargo test` keeps them fixed
//! without nightly. Each function panics exactly when the fuzzer should report a failure.

use nnunet_rt::folder::{Bundle, ExportMetadata, Plan, ROLE_CLASSIFICATION, ROLE_SEGMENTATION};
use nnunet_rt::io::nifti;
use nnunet_rt::io::npy;
use nnunet_rt::metrics::edt::distance_transform;
use nnunet_rt::metrics::{evaluate_labels, surfel_area_table, Emptiness, LabelBuffer, LabelVolume, Region};
use serde_json::Value;

/// Voxel spacings and NSD tolerances the metrics check draws from (mm).
const SPACINGS: [f64; 4] = [1.0, 0.5, 2.5, 0.7];
const TOLERANCES: [f64; 4] = [0.0, 1.0, 2.0, 3.5];

/// NIfTI-1 decoding from bytes, raw or gzip: any input is a decoded image or an error, never a
/// panic, a hang or an allocation the bytes cannot back.
pub fn nifti(data: &[u8]) {
    if let Ok(image) = nifti::decode(data) {
        let v = &image.volume;
        // What decoding promises: the voxels fill the dims, and the view the predictor takes is valid.
        assert_eq!(v.data.len(), v.dims.iter().product::<usize>() * v.channels);
        assert!(v.view().is_ok());
    }
}

/// `.npy` parsing from bytes: any input is an array or an error, and an array converts.
pub fn npy(data: &[u8]) {
    if let Ok(array) = npy::parse(data) {
        // A parsed array holds every element its shape names, so conversion cannot run short.
        let values = array.to_f32().expect("a parsed array converts");
        assert_eq!(values.len(), array.len());
        if array.descr == "<f2" {
            assert_eq!(array.to_f16().expect("float16").len(), array.len());
        }
    }
}

/// A model folder's JSON: `plans.json`, `dataset.json` and a fold's `nnunet_rt_export.json`, as
/// three documents separated by a 0xFF byte (never part of valid JSON). Whatever they hold,
/// resolving the configuration (through `inherits_from` chains) is a plan or an error, and a
/// plan keeps the promises the predictor relies on.
pub fn model_folder(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0xff);
    let (Some(plans), Some(dataset)) = (parts.next(), parts.next()) else { return };
    let metadata = parts.next().unwrap_or(b"{}");
    let (Ok(plans), Ok(dataset)) = (serde_json::from_slice::<Value>(plans), serde_json::from_slice::<Value>(dataset))
    else {
        return;
    };
    let metadata =
        serde_json::from_slice::<Value>(metadata).ok().and_then(|m| serde_json::from_value::<ExportMetadata>(m).ok());
    let configuration = metadata.as_ref().map_or("3d_fullres", |m| m.configuration.as_str());
    if let Some(m) = &metadata {
        let _ = (m.output(ROLE_SEGMENTATION), m.output(ROLE_CLASSIFICATION));
    }
    let Ok(plan) = Plan::from_json(&plans, &dataset, configuration) else { return };
    assert_eq!(plan.configuration, configuration);
    assert!(matches!(plan.network_dims, 2 | 3));
    assert!(plan.patch_size.iter().all(|&p| p > 0));
    assert_eq!(plan.normalization.len(), plan.channel_names.len());
    for i in 0..3 {
        assert_eq!(plan.transpose_backward[plan.transpose_forward[i]], i);
    }
    let xyz = [10usize, 20, 30];
    assert_eq!(plan.to_caller_axes(plan.to_network_axes(xyz)), xyz);
    assert_eq!(plan.network_input_shape().len(), plan.network_dims + 1);
    let spacing = plan.target_spacing([1.0, 1.0, 1.0]);
    assert!(spacing.iter().all(|s| s.is_finite() && *s > 0.0), "target spacing {spacing:?}");
    let _ = (plan.num_classes(), plan.num_outputs(), plan.foreground_labels(), plan.needs_nonzero_mask());
}

/// Metrics of random label maps against a brute-force reference computed here from the
/// definitions in `nnunet_rt::metrics`: voxel counts and Dice, every surfel of both masks with its
/// area and its distance to the other surface (nearest surfel corner by exhaustive search, not a
/// distance transform), and NSD, HD95 and MSD from those; plus the distance transform itself.
///
/// Input: 3 bytes of dims (1..=6 each), 3 of spacing (from a table), 1 of NSD tolerance, then
/// one byte per voxel of the prediction and of the reference (labels 0..=2).
pub fn metrics(data: &[u8]) {
    if data.len() < 7 {
        return;
    }
    let dims: [usize; 3] = std::array::from_fn(|i| 1 + data[i] as usize % 6);
    let spacing: [f64; 3] = std::array::from_fn(|i| SPACINGS[data[3 + i] as usize % 4]);
    let tolerance = TOLERANCES[data[6] as usize % 4];
    let n = dims.iter().product::<usize>();
    let voxels = &data[7..];
    let label = |i: usize| voxels.get(i).map_or(0, |&b| b % 3);
    let pred: Vec<u8> = (0..n).map(label).collect();
    let reference: Vec<u8> = (0..n).map(|i| label(n + i)).collect();

    let regions = [vec![1], vec![2], vec![1, 2]];
    let named: Vec<Region> = regions
        .iter()
        .enumerate()
        .map(|(i, labels)| Region { name: format!("r{i}"), labels: labels.clone(), nsd_tolerance_mm: tolerance })
        .collect();
    let p = LabelVolume::new(LabelBuffer::U8(&pred), dims, spacing).expect("valid pred");
    let r = LabelVolume::new(LabelBuffer::U8(&reference), dims, spacing).expect("valid reference");
    let case = evaluate_labels(&p, &r, &named).expect("evaluates");
    assert_eq!(case.regions.len(), regions.len());

    for (labels, got) in regions.iter().zip(&case.regions) {
        let pm: Vec<bool> = pred.iter().map(|v| labels.contains(&(*v as u32))).collect();
        let rm: Vec<bool> = reference.iter().map(|v| labels.contains(&(*v as u32))).collect();
        let np = pm.iter().filter(|&&b| b).count() as u64;
        let nr = rm.iter().filter(|&&b| b).count() as u64;
        let both = pm.iter().zip(&rm).filter(|(a, b)| **a && **b).count() as u64;
        assert_eq!((got.pred_voxels, got.ref_voxels, got.overlap_voxels), (np, nr, both));
        let expected_empty = match (np == 0, nr == 0) {
            (true, true) => Emptiness::Both,
            (true, false) => Emptiness::Pred,
            (false, true) => Emptiness::Ref,
            (false, false) => Emptiness::Neither,
        };
        assert_eq!(got.empty, expected_empty);
        let dice = if np + nr == 0 { 1.0 } else { 2.0 * both as f64 / (np + nr) as f64 };
        assert_eq!(got.dice, dice);
        if expected_empty != Emptiness::Neither {
            continue;
        }
        let (p_surf, r_surf) = (surfels(&pm, dims, spacing), surfels(&rm, dims, spacing));
        let p_directed = directed(&p_surf, &r_surf, spacing);
        let r_directed = directed(&r_surf, &p_surf, spacing);
        let area = |s: &[(f64, f64)]| s.iter().map(|x| x.1).sum::<f64>();
        close(got.pred_surface_mm2, area(&p_directed), "pred surface");
        close(got.ref_surface_mm2, area(&r_directed), "ref surface");
        let within = |s: &[(f64, f64)]| s.iter().filter(|x| x.0 <= tolerance).map(|x| x.1).sum::<f64>();
        let nsd = (within(&p_directed) + within(&r_directed)) / (area(&p_directed) + area(&r_directed));
        close(got.nsd, nsd, "nsd");
        let weighted = |s: &[(f64, f64)]| s.iter().map(|x| x.0 * x.1).sum::<f64>();
        let msd = (weighted(&p_directed) + weighted(&r_directed)) / (area(&p_directed) + area(&r_directed));
        close(got.msd, msd, "msd");
        // HD95: a percentile jumps between distances, so it must be one of the brute-force
        // surfel distances, and lie between the two directed percentiles' bounds.
        let hd = percentile(&p_directed, 95.0).max(percentile(&r_directed, 95.0));
        let candidates: Vec<f64> = p_directed.iter().chain(&r_directed).map(|x| x.0).collect();
        assert!(candidates.iter().any(|&d| rel(d, got.hd95) <= 1e-9), "hd95 {} is no surfel distance", got.hd95);
        let near_boundary = (got.hd95 - hd).abs() > 1e-9;
        if near_boundary {
            // Only a tie in cumulative area at exactly 95 % may tip the choice: check it is one.
            assert!(
                at_boundary(&p_directed, 95.0) || at_boundary(&r_directed, 95.0),
                "hd95 {} but brute force {hd}",
                got.hd95
            );
        }
    }

    // The distance transform of the reference against exhaustive search.
    let features: Vec<bool> = reference.iter().map(|&v| v != 0).collect();
    let edt = distance_transform(&features, dims, spacing).expect("transform");
    let points: Vec<[usize; 3]> = (0..n).filter(|&i| features[i]).map(|i| xyz(i, dims)).collect();
    for (i, &got) in edt.iter().enumerate() {
        let q = xyz(i, dims);
        let expected = points
            .iter()
            .map(|p| (0..3).map(|a| (spacing[a] * (p[a] as f64 - q[a] as f64)).powi(2)).sum::<f64>().sqrt())
            .fold(f64::INFINITY, f64::min);
        if expected.is_infinite() {
            assert!(got.is_infinite());
        } else {
            close(got, expected, "distance transform");
        }
    }
}

fn xyz(i: usize, dims: [usize; 3]) -> [usize; 3] {
    [i % dims[0], (i / dims[0]) % dims[1], i / (dims[0] * dims[1])]
}

/// Surfels of a mask by definition: every voxel corner `c` (corners run from -1 to n-1 on each
/// axis; corner `c` sees voxels `c + {0, 1}³`, outside voxels being background) whose
/// neighbourhood is mixed, with its corner position and the area of its code.
fn surfels(mask: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<([i64; 3], f64)> {
    let table = surfel_area_table(spacing);
    let at = |x: i64, y: i64, z: i64| {
        let inside =
            x >= 0 && y >= 0 && z >= 0 && (x as usize) < dims[0] && (y as usize) < dims[1] && (z as usize) < dims[2];
        inside && mask[x as usize + dims[0] * (y as usize + dims[1] * z as usize)]
    };
    let mut out = Vec::new();
    for z in -1..dims[2] as i64 {
        for y in -1..dims[1] as i64 {
            for x in -1..dims[0] as i64 {
                let mut code = 0usize;
                for bit in 0..8 {
                    let (dx, dy, dz) = ((bit & 1) as i64, ((bit >> 1) & 1) as i64, ((bit >> 2) & 1) as i64);
                    if at(x + dx, y + dy, z + dz) {
                        code |= 1 << bit;
                    }
                }
                if code != 0 && code != 255 {
                    out.push(([x, y, z], table[code]));
                }
            }
        }
    }
    out
}

/// (distance to the nearest corner of `to`, area) of every surfel of `from`, sorted.
fn directed(from: &[([i64; 3], f64)], to: &[([i64; 3], f64)], spacing: [f64; 3]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = from
        .iter()
        .map(|(c, area)| {
            let d = to
                .iter()
                .map(|(o, _)| (0..3).map(|a| (spacing[a] * (c[a] - o[a]) as f64).powi(2)).sum::<f64>())
                .fold(f64::INFINITY, f64::min);
            (d.sqrt(), *area)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    out
}

/// Distance of the first surfel at which the cumulative area reaches `percent` of the total.
fn percentile(s: &[(f64, f64)], percent: f64) -> f64 {
    let total: f64 = s.iter().map(|x| x.1).sum();
    let mut cumulative = 0.0;
    for &(d, a) in s {
        cumulative += a;
        if cumulative / total >= percent / 100.0 {
            return d;
        }
    }
    s.last().map_or(0.0, |x| x.0)
}

/// Whether the cumulative area passes `percent` within rounding of a surfel boundary.
fn at_boundary(s: &[(f64, f64)], percent: f64) -> bool {
    let total: f64 = s.iter().map(|x| x.1).sum();
    let mut cumulative = 0.0;
    s.iter().any(|&(_, a)| {
        cumulative += a;
        (cumulative / total - percent / 100.0).abs() <= 1e-9
    })
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

fn close(got: f64, expected: f64, what: &str) {
    assert!(rel(got, expected) <= 1e-9 || (got - expected).abs() <= 1e-12, "{what}: {got} vs brute force {expected}");
}

/// A model bundle (`folder::Bundle::parse`): any bytes are an index of entries with plain
/// relative names lying inside the bytes, or an error. The first input byte chooses between the
/// rest as it is (even) and the rest with its CRC-32 appended (odd), so mutations get past the
/// checksum to the entry table.
pub fn bundle(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
    }
    let len = bytes.len();
    let Ok(bundle) = Bundle::parse(bytes) else { return };
    let mut total = 0;
    for name in bundle.names() {
        let plain = !name.is_empty()
            && !name.contains('\\')
            && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
        assert!(plain, "entry name {name:?} escapes the bundle");
        total += bundle.get(name).expect("a listed entry has bytes").len();
    }
    assert!(total <= len, "entries hold {total} bytes of a {len}-byte bundle");
}
