//! A volume too big for the process's address-space limit is `NNRT_OUT_OF_MEMORY` with the size
//! asked for, not an abort, and the model then predicts a small volume as before.
//!
//! The limit (RLIMIT_AS) would constrain every test in this process, so the check runs in a child
//! process: the parent re-runs this test binary on the ignored `child` test.

mod common;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use nnunet_rt::ffi::*;

const CHILD: &str = "under_an_address_space_limit";

#[test]
fn a_volume_too_big_for_the_memory_limit_is_an_error_and_the_model_stays_usable() {
    if !common::ort_available() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([CHILD, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("NNRT_OOM_CHILD", "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child failed (an abort shows as a signal):\n{text}");
    assert!(text.contains("child: out of memory reported, then predicted"), "{text}");
}

fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(nnrt_last_error_message()) }.to_string_lossy().into_owned()
}

fn describe(data: &[i16], dims: [usize; 3]) -> nnrt_volume {
    nnrt_volume {
        struct_size: std::mem::size_of::<nnrt_volume>(),
        data: data.as_ptr().cast(),
        dtype: NNRT_DTYPE_I16,
        dims,
        channels: 1,
        spacing: [0.75, 0.75, 2.0],
        origin: [0.0; 3],
        direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        byte_strides: [0; 4],
    }
}

fn labels(model: *const nnrt_model, volume: &nnrt_volume) -> Result<Vec<u8>, (u32, String)> {
    let mut result = null_mut();
    let status = nnrt_predict(model, volume, null(), &mut result);
    if status != NNRT_OK {
        return Err((status, last_error()));
    }
    let n = volume.dims.iter().product::<usize>();
    let mut out = vec![0u8; n];
    assert_eq!(nnrt_result_copy_labels(result, out.as_mut_ptr().cast(), NNRT_DTYPE_U8, null()), NNRT_OK);
    nnrt_result_free(result);
    Ok(out)
}

/// Address space in use now (bytes), from /proc/self/status.
fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
#[ignore = "run in a child process by the test above"]
fn under_an_address_space_limit() {
    assert_eq!(std::env::var("NNRT_OOM_CHILD").as_deref(), Ok("1"), "run by its parent test only");
    let dir = std::ffi::CString::new(common::fixtures().join("models/resenc_ct").to_str().unwrap()).unwrap();
    let (mut options, mut model) = (null_mut(), null_mut());
    assert_eq!(nnrt_options_new(&mut options), NNRT_OK);
    let fold = c"0".as_ptr();
    assert_eq!(nnrt_options_set_folds(options, &fold, 1), NNRT_OK);
    assert_eq!(nnrt_options_set_threads(options, 1), NNRT_OK);
    assert_eq!(nnrt_model_load(dir.as_ptr(), options, &mut model), NNRT_OK, "{}", last_error());
    nnrt_options_free(options);

    // A small case, predicted once before the limit (ONNX Runtime's own buffers settle).
    let small: Vec<i16> = (0..72 * 32 * 16).map(|i| ((i * 37) % 300) as i16 - 100).collect();
    let small_volume = describe(&small, [72, 32, 16]);
    let expected = labels(model, &small_volume).unwrap();

    // A CT-sized volume whose working set cannot fit 512 MiB more address space.
    let big = vec![40i16; 512 * 512 * 300];
    let big_volume = describe(&big, [512, 512, 300]);
    let mut estimate = 0u64;
    assert_eq!(nnrt_estimate_peak_bytes(model, &big_volume, null(), &mut estimate), NNRT_OK);
    let headroom = 512u64 << 20;
    assert!(estimate > 2 * headroom, "the big case must not fit: estimate {estimate}");
    let limit = address_space() + headroom;
    let rlimit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: a plain system call on this process with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);

    let (status, message) = labels(model, &big_volume).unwrap_err();
    assert_eq!(status, NNRT_OUT_OF_MEMORY, "{message}");
    assert!(message.contains("MiB"), "the size asked for is named: {message}");
    assert_eq!(labels(model, &small_volume).unwrap(), expected, "the model predicts as before");
    nnrt_model_free(model);
    println!("child: out of memory reported, then predicted the small case again ({message})");
}
