//! SIGINT or SIGTERM while `nnunet-rt predict` runs: the command stops at the next tile, exits
//! with 128 + the signal (130, 143), and leaves no output of the interrupted case, complete or
//! partial. The signal is sent once the progress bar shows the network running.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn interrupt_during_predict(signal: &str, expected_code: i32) {
    if !common::ort_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nnrt-cli-interrupt-{signal}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (input, output) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let case = common::fixtures().join("cases/aniso_int16/input/aniso_int16_0000.nii.gz");
    for id in ["a", "b"] {
        std::fs::copy(&case, input.join(format!("{id}_0000.nii.gz"))).unwrap();
    }
    // A small step and mirroring make many network passes, so the signal lands mid-case.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnunet-rt"))
        .args(["predict", "--step-size", "0.1", "--save-probabilities", "-m"])
        .arg(common::fixtures().join("models/resenc_ct"))
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (mut pipe, stderr) = (child.stderr.take().unwrap(), Arc::clone(&stderr));
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                stderr.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    };
    let started = Instant::now();
    while !stderr.lock().unwrap().contains("network") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "predict ended before the network ran: {}",
            stderr.lock().unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(expected_code), "{status:?}: {stderr}");
    assert!(stderr.contains(&format!("interrupted by SIG{signal}")), "{stderr}");
    // The first case was interrupted: nothing of it, or of the second, exists under any name.
    let left: Vec<PathBuf> = std::fs::read_dir(&output).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigint_during_predict_exits_130_and_leaves_nothing() {
    interrupt_during_predict("INT", 130);
}

#[test]
fn sigterm_during_predict_exits_143_and_leaves_nothing() {
    interrupt_during_predict("TERM", 143);
}
