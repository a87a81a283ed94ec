//! Image geometry as SimpleITK reads it (what nnU-Net sees and what outputs carry): every fixture
//! case's input against the spacing, origin and direction SimpleITK recorded in its case.json,
//! and headers crafted for each branch of ITK's qform/sform choice against SimpleITK's reading
//! of the same bytes (tools/make_geometry_fixtures.py wrote both).

mod common;

use std::path::Path;

use nnunet_rt::io::nifti;
use nnunet_rt::{ErrorKind, Geometry};
use serde_json::Value;

/// Single-precision header fields, double-precision arithmetic on both sides: agreement to a
/// few float32 ulps of the largest coordinate.
fn assert_geometry(what: &str, got: &Geometry, expected: &Value) {
    let list = |key: &str| -> Vec<f64> {
        expected[key]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no {key}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    for (key, ours) in [("spacing", &got.spacing[..]), ("origin", &got.origin[..]), ("direction", &got.direction[..])] {
        let theirs = list(key);
        assert_eq!(ours.len(), theirs.len(), "{what}: {key}");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{what}: {key}[{i}] is {a}, SimpleITK reads {b}\n  ours {ours:?}\n  sitk {theirs:?}"
            );
        }
    }
}

#[test]
fn fixture_cases_read_with_simpleitk_geometry() {
    let cases = common::fixtures().join("cases");
    let mut checked = 0;
    for entry in std::fs::read_dir(&cases).unwrap() {
        let dir = entry.unwrap().path();
        let meta = common::read_json(&dir.join("reference/case.json"));
        let sitk = &meta["sitk"];
        assert!(sitk.is_object(), "{}: case.json has no \"sitk\" geometry", dir.display());
        for file in meta["input_files"].as_array().unwrap() {
            let path = dir.join("input").join(file.as_str().unwrap());
            let image = nifti::read_image(&path).unwrap();
            assert_geometry(&path.display().to_string(), &image.volume.geometry, sitk);
            checked += 1;
        }
    }
    assert!(checked >= 13, "only {checked} fixture images");
}

#[test]
fn qform_and_sform_are_chosen_as_itk_chooses() {
    let dir = common::fixtures().join("geometry");
    let expected = common::read_json(&dir.join("geometry.json"));
    let names: Vec<&String> = expected.as_object().unwrap().keys().filter(|k| !k.starts_with('_')).collect();
    assert_eq!(names.len(), 11, "{names:?}");
    for name in names {
        let path = dir.join(format!("{name}.nii"));
        let wanted = &expected[name.as_str()];
        match nifti::read_image(&path) {
            Ok(image) => {
                assert!(
                    wanted.get("error").is_none(),
                    "{name}: SimpleITK refuses it ({}) but we read it",
                    wanted["error"]
                );
                assert_geometry(name, &image.volume.geometry, wanted);
            }
            Err(err) => {
                assert!(wanted.get("error").is_some(), "{name}: SimpleITK reads it but we fail: {err}");
                assert_eq!(err.kind(), ErrorKind::InvalidImage, "{name}: {err}");
                assert!(err.message().contains("orthonormal"), "{name}: {err}");
            }
        }
    }
}

/// The rule itself, on headers built here, with no SimpleITK in the loop: which transform wins.
#[test]
fn the_precedence_rule_on_headers_built_here() {
    let origin_of = |qform_code: i16, sform_code: i16, sform_shear: f32| {
        let mut bytes = std::fs::read(Path::new(&common::fixtures().join("geometry/no_transform.nii"))).unwrap();
        // qform: identity rotation, offset (1, 2, 3); sform: scaled axes, offset (10, 20, 30).
        bytes[252..254].copy_from_slice(&qform_code.to_le_bytes());
        bytes[254..256].copy_from_slice(&sform_code.to_le_bytes());
        for (i, v) in [0.0f32, 0.0, 0.0, 1.0, 2.0, 3.0].iter().enumerate() {
            bytes[256 + 4 * i..260 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let rows = [[0.8f32, sform_shear, 0.0, 10.0], [0.0, 0.9, 0.0, 20.0], [0.0, 0.0, 2.5, 30.0]];
        for (i, v) in rows.iter().flatten().enumerate() {
            bytes[280 + 4 * i..284 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        nifti::decode(&bytes).map(|image| image.volume.geometry.origin)
    };
    let (qform, sform) = ([-1.0, -2.0, 3.0], [-10.0, -20.0, 30.0]);
    assert_eq!(origin_of(0, 0, 0.0).unwrap(), [0.0; 3], "no transform: origin 0");
    assert_eq!(origin_of(1, 0, 0.0).unwrap(), qform, "qform alone");
    assert_eq!(origin_of(0, 2, 0.0).unwrap(), sform, "sform alone");
    assert_eq!(origin_of(1, 1, 0.0).unwrap(), sform, "a scanner-anatomical sform wins");
    assert_eq!(origin_of(1, 2, 0.0).unwrap(), qform, "an aligned sform unlike the qform loses");
    assert_eq!(origin_of(1, 1, 0.5).unwrap(), qform, "a sheared sform loses to any qform");
    assert_eq!(origin_of(0, 1, 0.5).unwrap_err().kind(), ErrorKind::InvalidImage, "a sheared sform alone is refused");
}
