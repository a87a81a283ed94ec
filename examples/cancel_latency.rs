//! How long `Model::cancel` (C: `nnrt_cancel`) takes to stop a prediction in the middle of a
//! network pass: the time from the call to `predict` returning `Cancelled`.
//!
//! ```text
//! cargo run --release --example cancel_latency -- MODEL_DIR IMAGE.nii.gz [DEVICE] [DELAY_S]...
//! ```
//!
//! For each delay, a prediction starts on another thread; `DELAY_S` seconds after its network
//! stage began (so, usually inside a forward), the main thread cancels and measures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nnunet_rt::io::nifti;
use nnunet_rt::{ErrorKind, LoadOptions, Model, PredictOptions, Stage};

fn main() -> nnunet_rt::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} MODEL_DIR IMAGE.nii.gz [DEVICE] [DELAY_S]...", args[0]);
        std::process::exit(2);
    }
    let device = args.get(3).map_or(Ok(nnunet_rt::Device::Auto), |d| d.parse())?;
    let delays: Vec<f64> = args.iter().skip(4).filter_map(|d| d.parse().ok()).collect();
    let delays = if delays.is_empty() { vec![1.0, 2.5, 4.0] } else { delays };
    let model = Arc::new(Model::load(&args[1], &LoadOptions { device, ..LoadOptions::default() })?);
    let image = Arc::new(nifti::read_image(args[2].as_ref())?);
    println!("model {} on {device}; one forward is the unit a cancel interrupts", args[1]);
    for delay in delays {
        let in_network = Arc::new(AtomicBool::new(false));
        let worker = {
            let (model, image, in_network) = (model.clone(), image.clone(), in_network.clone());
            std::thread::spawn(move || {
                let options = PredictOptions { mirroring: true, ..PredictOptions::default() };
                let outcome = model.predict(&image.volume.view().unwrap(), &options, &mut |stage, _| {
                    if stage == Stage::Network {
                        in_network.store(true, Ordering::SeqCst);
                    }
                    true
                });
                (outcome.map(|_| ()), Instant::now())
            })
        };
        while !in_network.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_secs_f64(delay));
        let cancelled_at = Instant::now();
        model.cancel();
        let (outcome, returned_at) = worker.join().expect("the prediction thread");
        let kind = outcome.err().map(|e| e.kind());
        let latency = returned_at.duration_since(cancelled_at);
        println!(
            "cancel {delay:.1} s into the network stage: returned {} after {:.0} ms",
            if kind == Some(ErrorKind::Cancelled) { "Cancelled" } else { "something else" },
            latency.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
