//! Resampling a label map as nnU-Net does for a cascade's previous stage, against the arrays
//! `tools/make_resample_seg_fixtures.py` made with nnU-Net's `resample_data_or_seg_to_shape`.

mod common;

use nnunet_rt::folder::ResamplingSpec;
use nnunet_rt::io::npy;
use nnunet_rt::resample::resample_segmentation;

fn triple<T: Copy>(v: &serde_json::Value, f: impl Fn(&serde_json::Value) -> T) -> [T; 3] {
    let list = v.as_array().unwrap();
    [f(&list[0]), f(&list[1]), f(&list[2])]
}

#[test]
fn label_maps_resample_like_nnunet() {
    let dir = common::fixtures().join("resample_seg");
    let cases = common::read_json(&dir.join("cases.json"));
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 4, "the four generated cases");
    let spec = ResamplingSpec { order: 1, order_z: 0, force_separate_z: None };
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let read = |suffix: &str| -> Vec<i16> {
            let array = npy::read(&dir.join(format!("{name}_{suffix}.npy"))).unwrap();
            array.to_f32().unwrap().into_iter().map(|v| v as i16).collect()
        };
        let shape = triple(&case["shape"], |v| v.as_u64().unwrap() as usize);
        let new_shape = triple(&case["new_shape"], |v| v.as_u64().unwrap() as usize);
        let current = triple(&case["current_spacing"], |v| v.as_f64().unwrap());
        let new = triple(&case["new_spacing"], |v| v.as_f64().unwrap());
        let ours = resample_segmentation(&read("input"), shape, new_shape, current, new, &spec);
        let expected = read("expected");
        let differing = ours.iter().zip(&expected).filter(|(a, b)| a != b).count();
        for (i, (a, b)) in ours.iter().zip(&expected).enumerate().filter(|(_, (a, b))| a != b).take(5) {
            let plane = new_shape[1] * new_shape[2];
            eprintln!(
                "{name}: at {:?} ours {a} nnU-Net {b}",
                [i / plane, (i / new_shape[2]) % new_shape[1], i % new_shape[2]]
            );
        }
        assert_eq!(differing, 0, "{name}: {differing} of {} voxels differ from nnU-Net", expected.len());
        assert!(expected.contains(&-1) && expected.contains(&2), "{name}: the case exercises every label");
    }
}

#[test]
fn nearest_resize_matches_skimage() {
    use nnunet_rt::resample::resize_segmentation;
    let row = |n: usize, m: usize| -> Vec<i16> {
        let seg: Vec<i16> = (0..n as i16).collect();
        resize_segmentation(&seg, &[1, n], &[1, m], 0)
    };
    // skimage.transform.resize(np.arange(n)[None], (1, m), order=0, mode='edge', anti_aliasing=False)
    assert_eq!(row(5, 7), [0, 1, 1, 2, 3, 3, 4]);
    assert_eq!(
        row(20, 31),
        [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 10, 10, 11, 11, 12, 13, 13, 14, 15, 15, 16, 17, 17, 18, 19, 19]
    );
}
