//! Postprocessing against nnU-Net itself: every fixture of `tests/fixtures/postprocessing/`
//! (written by `tools/make_postprocessing_fixtures.py` with nnunetv2 2.8.1) is a label map, a
//! `postprocessing.json` as `determine_postprocessing` writes it, and the map nnU-Net's
//! `apply_postprocessing` made of it. The library must give the same map, voxel for voxel.

use std::path::{Path, PathBuf};

use nnunet_rt::io::npy;
use nnunet_rt::postprocess::{Postprocessing, StepReport};
use nnunet_rt::Labels;
use serde_json::Value;

/// Cases in `manifest.json`; a smaller number means fixtures went missing.
const EXPECTED_CASES: usize = 14;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/postprocessing")
}

/// A uint8 (z, y, x) array as a label map with dims (x, y, z).
fn read_labels(path: &Path) -> (Vec<u8>, [usize; 3]) {
    let array = npy::read(path).unwrap();
    assert_eq!(array.descr, "|u1", "{}", path.display());
    let &[nz, ny, nx] = array.shape.as_slice() else { panic!("{}: shape {:?}", path.display(), array.shape) };
    let values = array.to_f32().unwrap().into_iter().map(|v| v as u8).collect();
    (values, [nx, ny, nz])
}

fn manifest_cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["cases"].as_array().unwrap().clone()
}

/// Every `postprocessing.json` under the fixture folder, relative to it.
fn json_files_on_disk() -> Vec<String> {
    let root = fixtures();
    let mut found = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.file_name().is_some_and(|n| n == "postprocessing.json") {
                found.push(path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_fixture_set_is_complete() {
    let cases = manifest_cases();
    assert_eq!(cases.len(), EXPECTED_CASES);
    let mut listed: Vec<String> = cases.iter().map(|c| c["postprocessing"].as_str().unwrap().to_string()).collect();
    listed.sort();
    assert_eq!(listed, json_files_on_disk(), "manifest.json and the files on disk disagree");
}

#[test]
fn every_fixture_matches_nnunet_voxel_for_voxel() {
    let cases = manifest_cases();
    assert_eq!(cases.len(), EXPECTED_CASES);
    let mut all_reports: Vec<(String, Vec<StepReport>)> = Vec::new();
    for case in &cases {
        let name = case["case"].as_str().unwrap();
        let file = |key: &str| fixtures().join(case[key].as_str().unwrap());
        let (input, dims) = read_labels(&file("input"));
        let (expected, expected_dims) = read_labels(&file("expected"));
        assert_eq!(dims, expected_dims, "{name}");

        let pp = Postprocessing::from_file(&file("postprocessing")).unwrap();
        pp.check_labels(case["label_count"].as_u64().unwrap() as usize).unwrap();
        let mut labels = Labels::U8(input.clone());
        let reports = pp.apply(&mut labels, dims).unwrap();
        let Labels::U8(output) = labels else { unreachable!() };

        let differing = output.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{name} ({pp}): {differing} voxels differ from nnU-Net");
        // The expected file really is postprocessed (not a copy of the input), by the amount the
        // manifest says, and the step reports account for every changed voxel.
        let changed = input.iter().zip(&expected).filter(|(a, b)| a != b).count() as u64;
        assert_eq!(changed, case["changed_voxels"].as_u64().unwrap(), "{name}");
        assert_eq!(reports.iter().map(|r| r.removed_voxels).sum::<u64>(), changed, "{name}");

        // The same answer through the u16 path.
        let mut wide = Labels::U16(input.iter().map(|&v| v as u16).collect());
        pp.apply(&mut wide, dims).unwrap();
        assert_eq!(wide, Labels::U16(expected.iter().map(|&v| v as u16).collect()), "{name} as u16");
        all_reports.push((name.to_string(), reports));
    }

    // The set exercises what it claims to: some voxels changed, a tie kept two components, an
    // empty mask, and a file without steps.
    let steps = || all_reports.iter().flat_map(|(_, r)| r);
    assert!(steps().any(|r| r.removed_voxels > 0));
    assert!(steps().any(|r| r.kept_components >= 2), "no fixture step keeps tied components");
    assert!(steps().any(|r| r.components == 0), "no fixture step has an empty mask");
    assert!(all_reports.iter().any(|(_, r)| r.is_empty()), "no fixture without steps");
}

#[test]
fn region_fixtures_parse_to_the_union_of_their_labels() {
    let pp = Postprocessing::from_file(&fixtures().join("regions/all_steps/postprocessing.json")).unwrap();
    assert_eq!(pp.to_string(), "keep the largest component of {1, 2, 3}, then of {1, 2, 3}, then of {2, 3}, then of 3");
    let scalar =
        Postprocessing::from_file(&fixtures().join("regions_scalar/whole_then_enhancing/postprocessing.json")).unwrap();
    assert_eq!(scalar.to_string(), "keep the largest component of {1, 2, 3}, then of 3");
}
