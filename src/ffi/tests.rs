//! The C ABI's bad-input catalogue, called from Rust exactly as C would call it.

use std::ffi::{c_void, CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};

use super::*;
use crate::backend::{TileNetwork, TileOutputs};
use crate::folder::ModelFolder;
use crate::Model;

fn last_error() -> String {
    // SAFETY: the library always returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(nnrt_last_error_message()) }.to_string_lossy().into_owned()
}

fn fixture_model(name: &str) -> ModelFolder {
    ModelFolder::open(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name),
        Some(&["0".to_string()]),
    )
    .unwrap()
}

/// A network that panics on its first run (a bug inside the boundary).
struct Panicking(Vec<f32>);

impl TileNetwork for Panicking {
    fn input(&mut self, batch: usize) -> crate::Result<&mut [f32]> {
        // The fixture models have one channel and a 16x32x48 patch.
        self.0.resize(batch * 16 * 32 * 48, 0.0);
        Ok(&mut self.0)
    }
    fn run(&mut self) -> crate::Result<TileOutputs<'_>> {
        panic!("injected failure");
    }
}

/// A network with constant logits favouring label 1, for `classes` classes.
struct Constant {
    classes: usize,
    input: Vec<f32>,
    seg: Vec<f32>,
}

impl Constant {
    fn new(classes: usize) -> Constant {
        Constant { classes, input: Vec::new(), seg: Vec::new() }
    }
}

impl TileNetwork for Constant {
    fn input(&mut self, batch: usize) -> crate::Result<&mut [f32]> {
        self.input.resize(batch * 16 * 32 * 48, 0.0);
        Ok(&mut self.input)
    }
    fn run(&mut self) -> crate::Result<TileOutputs<'_>> {
        let voxels = 16 * 32 * 48;
        let batch = self.input.len() / voxels;
        self.seg.clear();
        for _ in 0..batch {
            for c in 0..self.classes {
                self.seg.extend(std::iter::repeat_n(if c == 1 { 2.0 } else { 0.0 }, voxels));
            }
        }
        Ok(TileOutputs { segmentation: &self.seg, classification: &[] })
    }
}

fn handle(model: Model) -> *mut nnrt_model {
    Box::into_raw(Box::new(nnrt_model::new(model)))
}

fn volume(data: &[i16], dims: [usize; 3]) -> nnrt_volume {
    nnrt_volume {
        struct_size: std::mem::size_of::<nnrt_volume>(),
        byte_strides: [0; 4],
        data: data.as_ptr().cast(),
        dtype: NNRT_DTYPE_I16,
        dims,
        channels: 1,
        spacing: [0.75, 0.75, 2.0],
        origin: [0.0; 3],
        direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    }
}

#[test]
fn null_arguments_are_reported_by_name() {
    let mut options = null_mut();
    assert_eq!(nnrt_options_new(null_mut()), NNRT_NULL_ARGUMENT);
    assert!(last_error().contains("`out`"), "{}", last_error());
    assert_eq!(nnrt_options_new(&mut options), NNRT_OK);
    assert!(last_error().contains("`out`"), "only a failure replaces the message: {}", last_error());
    let mut model = null_mut();
    assert_eq!(nnrt_model_load(null(), options, &mut model), NNRT_NULL_ARGUMENT);
    assert!(model.is_null());
    assert!(last_error().contains("model_dir"));
    assert_eq!(nnrt_model_load(c"/nonexistent/model".as_ptr(), options, null_mut()), NNRT_NULL_ARGUMENT);
    assert_eq!(nnrt_model_load(c"/nonexistent/model".as_ptr(), options, &mut model), NNRT_IO);
    assert!(last_error().contains("/nonexistent/model"), "{}", last_error());
    let mut n = 0usize;
    assert_eq!(nnrt_model_num_labels(null(), &mut n), NNRT_NULL_ARGUMENT);
    assert_eq!(nnrt_predict(null(), null(), null(), null_mut()), NNRT_NULL_ARGUMENT);
    let mut result = null_mut();
    assert_eq!(nnrt_predict(null(), null(), null(), &mut result), NNRT_NULL_ARGUMENT);
    assert!(last_error().contains("model"));
    assert_eq!(nnrt_result_num_labels(null(), &mut n), NNRT_NULL_ARGUMENT);
    assert_eq!(nnrt_options_set_folds(options, null(), 2), NNRT_NULL_ARGUMENT);
    assert_eq!(nnrt_options_set_threads(null_mut(), 2), NNRT_NULL_ARGUMENT);
    // Freeing NULL is a no-op.
    nnrt_model_free(null_mut());
    nnrt_result_free(null_mut());
    nnrt_options_free(null_mut());
    nnrt_predict_options_free(null_mut());
    nnrt_options_free(options);
}

#[test]
fn integers_from_c_are_validated() {
    let mut options = null_mut();
    assert_eq!(nnrt_options_new(&mut options), NNRT_OK);
    assert_eq!(nnrt_options_set_device(options, 7, 0), NNRT_INVALID_ARGUMENT);
    assert_eq!(nnrt_options_set_device(options, NNRT_DEVICE_CUDA, -1), NNRT_INVALID_ARGUMENT);
    nnrt_options_free(options);
    let mut predict = null_mut();
    assert_eq!(nnrt_predict_options_new(&mut predict), NNRT_OK);
    for step in [0.0, -1.0, 1.5, f64::NAN] {
        assert_eq!(nnrt_predict_options_set_step_size(predict, step), NNRT_INVALID_ARGUMENT);
    }
    assert_eq!(nnrt_predict_options_set_classification_policy(predict, 99), NNRT_INVALID_ARGUMENT);
    assert_eq!(nnrt_predict_options_set_precision(predict, 2), NNRT_INVALID_ARGUMENT);
    assert_eq!(nnrt_predict_options_set_precision(predict, NNRT_PRECISION_SINGLE), NNRT_OK);
    nnrt_predict_options_free(predict);
    // SAFETY: static strings.
    let unknown = unsafe { CStr::from_ptr(nnrt_status_str(12345)) };
    assert_eq!(unknown.to_str().unwrap(), "unknown status");
    let version = unsafe { CStr::from_ptr(nnrt_version()) }.to_str().unwrap();
    assert!(version.starts_with(concat!("nnunet-rt/", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn bad_volumes_are_refused_without_touching_the_buffer() {
    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Constant::new(3))]));
    let data = vec![40i16; 20 * 20 * 10];
    let before = data.clone();
    let mut result = null_mut();
    let cases: Vec<(nnrt_volume, u32)> = vec![
        (nnrt_volume { dims: [0, 20, 10], ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_IMAGE),
        (nnrt_volume { dims: [usize::MAX, 2, 2], ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_IMAGE),
        (nnrt_volume { dtype: 99, ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_ARGUMENT),
        (nnrt_volume { channels: 2, dims: [20, 20, 5], ..volume(&data, [20, 20, 10]) }, NNRT_SHAPE_MISMATCH),
        (nnrt_volume { spacing: [0.0, 1.0, 1.0], ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_IMAGE),
        (nnrt_volume { spacing: [-1.0, 1.0, 1.0], ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_IMAGE),
        (nnrt_volume { spacing: [f64::NAN, 1.0, 1.0], ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_IMAGE),
        (nnrt_volume { spacing: [f64::INFINITY, 1.0, 1.0], ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_IMAGE),
        (
            nnrt_volume { direction: [1.0, 0.2, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], ..volume(&data, [20, 20, 10]) },
            NNRT_INVALID_IMAGE,
        ),
        (nnrt_volume { data: null(), ..volume(&data, [20, 20, 10]) }, NNRT_NULL_ARGUMENT),
        (nnrt_volume { struct_size: 8, ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_ARGUMENT),
        (nnrt_volume { byte_strides: [3, 40, 800, 0], ..volume(&data, [20, 20, 10]) }, NNRT_INVALID_ARGUMENT),
    ];
    for (i, (v, expected)) in cases.iter().enumerate() {
        assert_eq!(nnrt_predict(model, v, null(), &mut result), *expected, "case {i}: {}", last_error());
        assert!(result.is_null());
        assert!(!last_error().is_empty());
    }
    let floats = vec![f32::NAN; 20 * 20 * 10];
    let nan_volume = nnrt_volume { data: floats.as_ptr().cast(), dtype: NNRT_DTYPE_F32, ..volume(&data, [20, 20, 10]) };
    assert_eq!(nnrt_predict(model, &nan_volume, null(), &mut result), NNRT_INVALID_IMAGE);
    assert!(last_error().contains("NaN"));
    assert_eq!(data, before);
    // A valid call still works afterwards.
    assert_eq!(nnrt_predict(model, &volume(&data, [20, 20, 10]), null(), &mut result), NNRT_OK, "{}", last_error());
    let (mut labels, mut dtype, mut dims) = (null(), 0u32, [0usize; 3]);
    assert_eq!(nnrt_result_labels(result, &mut labels, &mut dtype, dims.as_mut_ptr()), NNRT_OK);
    assert_eq!((dtype, dims), (NNRT_DTYPE_U8, [20, 20, 10]));
    // SAFETY: the result owns 4000 u8 labels until it is freed.
    let labels = unsafe { std::slice::from_raw_parts(labels as *const u8, 4000) };
    assert!(labels.iter().all(|&l| l == 1), "the constant network favours label 1");
    let mut predicted = 0usize;
    assert_eq!(nnrt_result_predicted_class(result, &mut predicted), NNRT_INVALID_ARGUMENT, "no head");
    let (mut probabilities, mut count) = (null(), 7usize);
    assert_eq!(nnrt_result_probabilities(result, &mut probabilities, &mut count), NNRT_OK);
    assert!(probabilities.is_null() && count == 0, "not requested");
    nnrt_result_free(result);
    nnrt_model_free(model);
}

extern "C" fn cancel_in_network(stage: u32, fraction: f64, user_data: *mut c_void) -> i32 {
    // SAFETY: the test passes a pointer to a live u32 counter.
    unsafe { *(user_data as *mut u32) += 1 };
    (stage == NNRT_STAGE_NETWORK && fraction > 0.0) as i32
}

#[test]
fn cancellation_and_progress_through_the_callback() {
    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Constant::new(3))]));
    let data = vec![40i16; 60 * 60 * 12];
    let mut calls = 0u32;
    let mut options = null_mut();
    assert_eq!(nnrt_predict_options_new(&mut options), NNRT_OK);
    assert_eq!(
        nnrt_predict_options_set_progress(options, Some(cancel_in_network), (&mut calls as *mut u32).cast()),
        NNRT_OK
    );
    let mut result = null_mut();
    assert_eq!(nnrt_predict(model, &volume(&data, [60, 60, 12]), options, &mut result), NNRT_CANCELLED);
    assert!(result.is_null());
    assert_eq!(calls, 3, "preprocess 0, network 0, then the first network pass cancels");
    nnrt_predict_options_free(options);
    nnrt_model_free(model);
}

#[test]
fn a_memory_limit_refuses_up_front() {
    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Panicking(Vec::new()))]));
    let data = vec![40i16; 20 * 20 * 10];
    let mut options = null_mut();
    assert_eq!(nnrt_predict_options_new(&mut options), NNRT_OK);
    assert_eq!(nnrt_predict_options_set_memory_limit(options, 1024), NNRT_OK);
    let mut result = null_mut();
    // The panicking network is never reached: the estimate refuses first.
    assert_eq!(nnrt_predict(model, &volume(&data, [20, 20, 10]), options, &mut result), NNRT_OUT_OF_MEMORY);
    assert!(last_error().contains("memory limit"), "{}", last_error());
    nnrt_predict_options_free(options);
    nnrt_model_free(model);
}

#[test]
fn a_panic_becomes_a_status_and_poisons_the_model() {
    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Panicking(Vec::new()))]));
    let data = vec![40i16; 20 * 20 * 10];
    let mut result = null_mut();
    assert_eq!(nnrt_predict(model, &volume(&data, [20, 20, 10]), null(), &mut result), NNRT_PANIC);
    assert!(last_error().contains("injected failure"), "{}", last_error());
    assert!(result.is_null());
    assert_eq!(nnrt_predict(model, &volume(&data, [20, 20, 10]), null(), &mut result), NNRT_POISONED);
    let mut n = 0usize;
    assert_eq!(nnrt_model_num_labels(model, &mut n), NNRT_OK, "introspection still works");
    assert_eq!(n, 3);
    nnrt_model_free(model);
}

#[test]
fn introspection_in_the_callers_axes() {
    let model = handle(Model::with_networks(fixture_model("multitask_ct"), vec![Box::new(Constant::new(3))]));
    let mut spacing = [0f64; 3];
    let mut patch = [0usize; 3];
    assert_eq!(nnrt_model_spacing(model, spacing.as_mut_ptr()), NNRT_OK);
    assert_eq!(nnrt_model_patch_size(model, patch.as_mut_ptr()), NNRT_OK);
    // SAFETY: live model.
    let plan = unsafe { (*model).model.plan().clone() };
    assert_eq!(spacing, [plan.spacing[2], plan.spacing[1], plan.spacing[0]]);
    assert_eq!(patch, [plan.patch_size[2], plan.patch_size[1], plan.patch_size[0]]);
    let (mut classes, mut name) = (0usize, null());
    assert_eq!(nnrt_model_num_classes(model, &mut classes), NNRT_OK);
    assert_eq!(classes, 3);
    assert_eq!(nnrt_model_class_name(model, 3, &mut name), NNRT_INVALID_ARGUMENT);
    assert_eq!(nnrt_model_label_name(model, 2, &mut name), NNRT_OK);
    // SAFETY: borrowed from the live model.
    assert_eq!(unsafe { CStr::from_ptr(name) }.to_str().unwrap(), "lesion");
    let fold = CString::new("0").unwrap();
    let folds = [fold.as_ptr()];
    let mut options = null_mut();
    assert_eq!(nnrt_options_new(&mut options), NNRT_OK);
    assert_eq!(nnrt_options_set_folds(options, folds.as_ptr(), 1), NNRT_OK);
    nnrt_options_free(options);
    nnrt_model_free(model);
}

#[test]
fn metrics_of_two_label_buffers() {
    // Prediction: a 4x4x4 cube of label 1; reference: the same cube shifted by one voxel in x.
    let dims = [10usize, 10, 10];
    let cube = |shift: usize| -> Vec<u8> {
        (0..1000)
            .map(|i| {
                let (x, y, z) = (i % 10, (i / 10) % 10, i / 100);
                ((3 + shift..7 + shift).contains(&x) && (3..7).contains(&y) && (3..7).contains(&z)) as u8
            })
            .collect()
    };
    let (p, r) = (cube(0), cube(1));
    let describe =
        |v: &Vec<u8>| nnrt_label_volume { data: v.as_ptr().cast(), dtype: NNRT_DTYPE_U8, dims, spacing: [1.0; 3] };
    let mut out = null_mut();
    assert_eq!(
        nnrt_evaluate_labels(&describe(&p), &describe(&r), c"cube=1".as_ptr(), 2.0, &mut out),
        NNRT_OK,
        "{}",
        last_error()
    );
    let (mut n, mut name, mut dice) = (0usize, null(), 0f64);
    assert_eq!(nnrt_metrics_num_regions(out, &mut n), NNRT_OK);
    assert_eq!(n, 1);
    assert_eq!(nnrt_metrics_region(out, 0, &mut name, &mut dice, null_mut(), null_mut(), null_mut()), NNRT_OK);
    // SAFETY: borrowed from the live metrics.
    assert_eq!(unsafe { CStr::from_ptr(name) }.to_str().unwrap(), "cube");
    assert!((dice - 0.75).abs() < 1e-12, "48 of 64 voxels overlap: {dice}");
    assert_eq!(
        nnrt_metrics_region(out, 1, &mut name, &mut dice, null_mut(), null_mut(), null_mut()),
        NNRT_INVALID_ARGUMENT
    );
    nnrt_metrics_free(out);
    let small = nnrt_label_volume { dims: [5, 10, 10], ..describe(&p) };
    assert_eq!(nnrt_evaluate_labels(&small, &describe(&r), null(), 2.0, &mut out), NNRT_SHAPE_MISMATCH);
    assert!(out.is_null());
    assert_eq!(nnrt_evaluate_labels(&describe(&p), &describe(&r), null(), 0.0, &mut out), NNRT_INVALID_ARGUMENT);
    assert_eq!(nnrt_evaluate_labels(null(), &describe(&r), null(), 2.0, &mut out), NNRT_NULL_ARGUMENT);
    nnrt_metrics_free(null_mut());
}

/// What a [`Blocking`] network shares with the test and with the model's cancel.
#[derive(Default)]
struct BlockState {
    forwards: std::sync::atomic::AtomicUsize,
    /// Runs wait for an interrupt while this is set.
    block: std::sync::atomic::AtomicBool,
    stopped: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
}

impl crate::backend::Interrupt for BlockState {
    fn interrupt(&self) {
        *self.stopped.lock().unwrap() = true;
        self.wake.notify_all();
    }
    fn resume(&self) {
        *self.stopped.lock().unwrap() = false;
    }
}

/// A network whose runs, like ONNX Runtime's, fail at once while stopped and otherwise (when
/// blocking) wait until interrupted: a forward that would take minutes.
struct Blocking {
    state: std::sync::Arc<BlockState>,
    input: Vec<f32>,
    seg: Vec<f32>,
}

impl TileNetwork for Blocking {
    fn input(&mut self, batch: usize) -> crate::Result<&mut [f32]> {
        self.input.resize(batch * 16 * 32 * 48, 0.0);
        Ok(&mut self.input)
    }
    fn run(&mut self) -> crate::Result<TileOutputs<'_>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.forwards.fetch_add(1, SeqCst);
        let stopped = self.state.stopped.lock().unwrap();
        let (stopped, _) = self
            .state
            .wake
            .wait_timeout_while(stopped, std::time::Duration::from_secs(120), |s| !*s && self.state.block.load(SeqCst))
            .unwrap();
        if *stopped {
            return Err(crate::Error::new(
                crate::ErrorKind::Runtime,
                "Exiting due to terminate flag being set to true.",
            ));
        }
        self.seg.resize(3 * 16 * 32 * 48, 0.0);
        Ok(TileOutputs { segmentation: &self.seg, classification: &[] })
    }
    fn interrupter(&self) -> Option<std::sync::Arc<dyn crate::backend::Interrupt>> {
        Some(self.state.clone())
    }
}

fn blocking_model() -> (*mut nnrt_model, std::sync::Arc<BlockState>) {
    let state = std::sync::Arc::new(BlockState::default());
    state.block.store(true, std::sync::atomic::Ordering::SeqCst);
    let network = Blocking { state: state.clone(), input: Vec::new(), seg: Vec::new() };
    (handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(network)])), state)
}

/// Predicts on another thread; returns its status when joined.
fn predict_in_thread(model: *mut nnrt_model, data: &'static [i16]) -> std::thread::JoinHandle<(u32, String)> {
    let model = model as usize;
    std::thread::spawn(move || {
        let mut result = null_mut();
        let status = nnrt_predict(model as *const nnrt_model, &volume(data, [60, 60, 12]), null(), &mut result);
        nnrt_result_free(result);
        (status, last_error())
    })
}

fn wait_for_forward(state: &BlockState) {
    let start = std::time::Instant::now();
    while state.forwards.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(start.elapsed().as_secs() < 60, "the prediction never reached the network");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn cancel_interrupts_the_running_forward_and_the_next_prediction_runs() {
    let (model, state) = blocking_model();
    let data: &'static [i16] = Box::leak(vec![40i16; 60 * 60 * 12].into_boxed_slice());
    let running = predict_in_thread(model, data);
    wait_for_forward(&state);
    assert_eq!(nnrt_cancel(model), NNRT_OK);
    let (status, message) = running.join().unwrap();
    assert_eq!(status, NNRT_CANCELLED, "{message}");
    assert!(message.contains("cancel"), "{message}");
    assert_eq!(state.forwards.load(std::sync::atomic::Ordering::SeqCst), 1, "no forward started after the cancel");
    // The stop flag does not outlive the cancelled prediction.
    state.block.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut result = null_mut();
    assert_eq!(nnrt_predict(model, &volume(data, [60, 60, 12]), null(), &mut result), NNRT_OK, "{}", last_error());
    nnrt_result_free(result);
    assert_eq!(nnrt_cancel(null()), NNRT_NULL_ARGUMENT);
    nnrt_model_free(model);
}

extern "C" fn stop_after_first_pass(stage: u32, fraction: f64, _: *mut c_void) -> i32 {
    (stage == NNRT_STAGE_NETWORK && fraction > 0.0) as i32
}

#[test]
fn a_stop_from_the_callback_is_honoured_before_the_next_forward() {
    let (model, state) = blocking_model();
    state.block.store(false, std::sync::atomic::Ordering::SeqCst);
    let data = vec![40i16; 60 * 60 * 12];
    let mut options = null_mut();
    assert_eq!(nnrt_predict_options_new(&mut options), NNRT_OK);
    assert_eq!(nnrt_predict_options_set_progress(options, Some(stop_after_first_pass), null_mut()), NNRT_OK);
    let mut result = null_mut();
    // Mirroring is on: a tile is 8 forwards, and the stop comes after the first of them.
    assert_eq!(nnrt_predict(model, &volume(&data, [60, 60, 12]), options, &mut result), NNRT_CANCELLED);
    assert_eq!(state.forwards.load(std::sync::atomic::Ordering::SeqCst), 1);
    nnrt_predict_options_free(options);
    nnrt_model_free(model);
}

#[test]
fn freeing_a_model_during_a_prediction_cancels_it_and_waits() {
    let (model, state) = blocking_model();
    let data: &'static [i16] = Box::leak(vec![40i16; 60 * 60 * 12].into_boxed_slice());
    let running = predict_in_thread(model, data);
    wait_for_forward(&state);
    nnrt_model_free(model);
    let (status, message) = running.join().unwrap();
    assert_eq!(status, NNRT_CANCELLED, "{message}");
}

#[test]
fn strided_volumes_are_read_as_described() {
    // A y-flipped 4x3x2 volume (a view with a negative y stride) reads as the packed original.
    let (x, y, z) = (4usize, 3usize, 2usize);
    let packed: Vec<i16> = (0..(x * y * z) as i16).collect();
    let mut flipped = vec![0i16; x * y * z];
    for k in 0..z {
        for j in 0..y {
            for i in 0..x {
                flipped[(k * y + (y - 1 - j)) * x + i] = packed[(k * y + j) * x + i];
            }
        }
    }
    let v = nnrt_volume {
        data: flipped[(y - 1) * x..].as_ptr().cast(),
        byte_strides: [2, -2 * x as i64, 2 * (x * y) as i64, 0],
        ..volume(&flipped, [x, y, z])
    };
    // SAFETY: every voxel the strides address lies inside `flipped`.
    let voxels = unsafe { v.voxels() }.unwrap();
    match voxels.view() {
        crate::VoxelData::I16(read) => assert_eq!(read, &packed[..]),
        other => panic!("read as {other:?}"),
    }
}

#[test]
fn labels_are_copied_into_the_callers_buffer_at_its_strides() {
    let dims = [3usize, 2, 2];
    let labels = crate::Labels::U8((0..12).map(|i| (i % 5) as u8).collect());
    // Packed as 32-bit integers.
    let mut packed = vec![-1i32; 12];
    // SAFETY: 12 aligned i32 slots.
    unsafe { volume::scatter_labels(&labels, dims, packed.as_mut_ptr().cast(), NNRT_DTYPE_I32, [0; 3]) }.unwrap();
    assert_eq!(packed, (0..12).map(|i| i % 5).collect::<Vec<i32>>());
    // Into every other u16 of a wider buffer (x stride 4 bytes), z slowest.
    let mut wide = vec![9u16; 24];
    // SAFETY: the strides stay inside the 24 elements.
    unsafe { volume::scatter_labels(&labels, dims, wide.as_mut_ptr().cast(), NNRT_DTYPE_U16, [4, 12, 24]) }.unwrap();
    for i in 0..12 {
        assert_eq!(wide[2 * i], (i % 5) as u16);
        assert_eq!(wide[2 * i + 1], 9, "gaps untouched");
    }

    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Constant::new(3))]));
    let data = vec![40i16; 20 * 20 * 10];
    let mut result = null_mut();
    assert_eq!(nnrt_predict(model, &volume(&data, [20, 20, 10]), null(), &mut result), NNRT_OK);
    let mut out = vec![0f32; 4000];
    assert_eq!(nnrt_result_copy_labels(result, out.as_mut_ptr().cast(), NNRT_DTYPE_F32, null()), NNRT_OK);
    assert!(out.iter().all(|&l| l == 1.0));
    assert_eq!(nnrt_result_copy_labels(result, null_mut(), NNRT_DTYPE_U8, null()), NNRT_NULL_ARGUMENT);
    assert_eq!(nnrt_result_copy_labels(result, out.as_mut_ptr().cast(), 99, null()), NNRT_INVALID_ARGUMENT);
    let misaligned = (out.as_mut_ptr() as *mut u8).wrapping_add(1);
    assert_eq!(nnrt_result_copy_labels(result, misaligned.cast(), NNRT_DTYPE_F32, null()), NNRT_INVALID_ARGUMENT);
    let (mut name, mut n) = (null(), 0usize);
    assert_eq!(nnrt_result_num_labels(result, &mut n), NNRT_OK);
    assert_eq!(nnrt_result_label_name(result, 2, &mut name), NNRT_OK);
    // SAFETY: borrowed from the live result.
    assert_eq!(unsafe { CStr::from_ptr(name) }.to_str().unwrap(), "lesion");
    assert_eq!(nnrt_result_label_name(result, n, &mut name), NNRT_INVALID_ARGUMENT);
    assert_eq!(nnrt_model_channel_name(model, 0, &mut name), NNRT_OK);
    // SAFETY: borrowed from the live model.
    assert_eq!(unsafe { CStr::from_ptr(name) }.to_str().unwrap(), "CT");
    assert_eq!(nnrt_model_channel_name(model, 1, &mut name), NNRT_INVALID_ARGUMENT);
    nnrt_result_free(result);
    nnrt_model_free(model);
}

#[test]
fn the_last_error_is_replaced_only_by_a_failure() {
    let mut options = null_mut();
    assert_eq!(nnrt_options_set_threads(null_mut(), 2), NNRT_NULL_ARGUMENT);
    let message = last_error();
    assert!(message.contains("options"), "{message}");
    assert_eq!(nnrt_options_new(&mut options), NNRT_OK);
    assert_eq!(nnrt_options_set_threads(options, 2), NNRT_OK);
    nnrt_options_free(options);
    nnrt_options_free(null_mut());
    let mut info = null();
    assert_eq!(nnrt_runtime_info(&mut info), NNRT_OK);
    assert_eq!(last_error(), message, "successes, frees and queries leave it");
    assert_eq!(nnrt_options_new(null_mut()), NNRT_NULL_ARGUMENT);
    assert!(last_error().contains("`out`"));
}

#[test]
fn the_estimate_is_the_models() {
    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Constant::new(3))]));
    let data = vec![40i16; 60 * 60 * 12];
    let v = volume(&data, [60, 60, 12]);
    let mut bytes = 0u64;
    assert_eq!(nnrt_estimate_peak_bytes(model, &v, null(), &mut bytes), NNRT_OK, "{}", last_error());
    // SAFETY: live model; the view borrows `data`.
    let expected = unsafe {
        let voxels = v.voxels().unwrap();
        (*model).model.estimate_peak_bytes(&v.view(&voxels).unwrap(), &crate::PredictOptions::default())
    };
    assert_eq!(bytes, expected);
    assert!(bytes > 0);
    // The voxels are not needed: an estimate before the volume exists.
    assert_eq!(nnrt_estimate_peak_bytes(model, &nnrt_volume { data: null(), ..v }, null(), &mut bytes), NNRT_OK);
    assert_eq!(nnrt_estimate_peak_bytes(model, &v, null(), null_mut()), NNRT_NULL_ARGUMENT);
    let bad = nnrt_volume { spacing: [0.0, 1.0, 1.0], ..v };
    assert_eq!(nnrt_estimate_peak_bytes(model, &bad, null(), &mut bytes), NNRT_INVALID_IMAGE);
    nnrt_model_free(model);
}

static LOGGED: std::sync::Mutex<Vec<(u32, String)>> = std::sync::Mutex::new(Vec::new());

extern "C" fn collect_log(level: u32, message: *const std::ffi::c_char, user_data: *mut c_void) {
    assert_eq!(user_data as usize, 42, "user data comes back untouched");
    // SAFETY: a NUL-terminated message borrowed for the call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    LOGGED.lock().unwrap().push((level, text));
}

#[test]
fn messages_reach_the_log_callback_at_its_level() {
    assert_eq!(nnrt_set_log_callback(Some(collect_log), 42 as *mut c_void, 9), NNRT_INVALID_ARGUMENT);
    assert_eq!(nnrt_set_log_callback(Some(collect_log), 42 as *mut c_void, NNRT_LOG_INFO), NNRT_OK);
    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Constant::new(3))]));
    let data = vec![40i16; 20 * 20 * 10];
    let mut result = null_mut();
    assert_eq!(nnrt_predict(model, &volume(&data, [20, 20, 10]), null(), &mut result), NNRT_OK);
    nnrt_result_free(result);
    nnrt_model_free(model);
    assert_eq!(nnrt_set_log_callback(None, null_mut(), NNRT_LOG_VERBOSE), NNRT_OK);
    let logged = LOGGED.lock().unwrap();
    assert!(
        logged.iter().any(|(level, m)| *level == NNRT_LOG_INFO && m.contains("predicted [20, 20, 10]")),
        "{logged:?}"
    );
}

#[test]
fn the_process_reports_what_it_has() {
    let mut info = null();
    assert_eq!(nnrt_runtime_info(null_mut()), NNRT_NULL_ARGUMENT);
    assert_eq!(nnrt_runtime_info(&mut info), NNRT_OK);
    // SAFETY: valid until the next call on this thread.
    let text = unsafe { CStr::from_ptr(info) }.to_str().unwrap().to_string();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["nnunet_rt_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["abi_version"], NNRT_ABI_VERSION);
    assert_eq!(nnrt_abi_version(), NNRT_ABI_VERSION);
    assert!(json["features"].as_array().unwrap().iter().any(|f| f == "io"));
    // Either a runtime loaded, with its providers, or the reason none did.
    match json["onnxruntime_version"].as_str() {
        Some(_) => assert!(
            json["execution_providers"].as_array().unwrap().iter().any(|p| p == "CPUExecutionProvider"),
            "{text}"
        ),
        None => assert!(json["onnxruntime_error"].as_str().is_some_and(|e| !e.is_empty()), "{text}"),
    }
}

/// A small deterministic generator (xorshift64*), so the random descriptions below are the same
/// on every run and a failure names a reproducible iteration.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

#[test]
fn random_volume_descriptions_give_a_status_never_a_panic() {
    // Random dtype codes, dims, channels, spacing, direction, struct sizes and strides through
    // the real entry point, with a fake network; every buffer the description addresses exists
    // (the caller's side of the contract), everything else is fair game.
    let model = handle(Model::with_networks(fixture_model("resenc_ct"), vec![Box::new(Constant::new(3))]));
    let storage = vec![0u64; 4096]; // 32 KiB, 8-byte aligned
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let odd = [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e300];
    let mut outcomes = std::collections::BTreeMap::new();
    for iteration in 0..3000 {
        let dims = [1 + random.below(9) as usize, 1 + random.below(9) as usize, 1 + random.below(5) as usize];
        let mut v = nnrt_volume {
            data: storage.as_ptr().cast(),
            dtype: random.below(10) as u32,
            dims,
            channels: 1 + random.below(2) as usize,
            ..volume(&[], dims)
        };
        let size = match v.dtype {
            NNRT_DTYPE_U8 | NNRT_DTYPE_I8 => 1i64,
            NNRT_DTYPE_U16 | NNRT_DTYPE_I16 => 2,
            NNRT_DTYPE_U32 | NNRT_DTYPE_I32 | NNRT_DTYPE_F32 => 4,
            _ => 8,
        };
        match random.below(8) {
            0 => v.spacing[random.below(3) as usize] = random.pick(&odd),
            1 => v.direction[random.below(9) as usize] = random.pick(&odd),
            2 => v.struct_size = random.below(300) as usize,
            3 => v.dims[random.below(3) as usize] = random.pick(&[0, usize::MAX, usize::MAX / 3]),
            4 => v.channels = random.pick(&[0, 3, usize::MAX]),
            5 => {
                // Strides that stay inside the storage: x, y, z and channel in any order and sign.
                let n = dims.iter().product::<usize>() as i64 * v.channels as i64;
                if n * size * 2 <= 4096 * 8 {
                    let mut order = [1i64, dims[0] as i64, (dims[0] * dims[1]) as i64, n / v.channels as i64];
                    for s in order.iter_mut() {
                        *s *= size * random.pick(&[1, 2]);
                    }
                    v.byte_strides = order;
                    if random.below(3) == 0 {
                        v.byte_strides[0] += 1; // not a multiple of the element size
                    }
                }
            }
            6 => v.data = (storage.as_ptr() as *const u8).wrapping_add(1).cast(), // misaligned
            _ => {}
        }
        let fits = v.dims.iter().chain([&v.channels]).try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        if fits.is_none_or(|n| n.saturating_mul(size as u64) > 4096 * 8) && v.byte_strides == [0; 4] {
            // The caller must own every voxel it describes: only descriptions the library can
            // refuse without reading them (zero, overflowing) may exceed the storage.
            if fits.is_some_and(|n| n > 0) && !matches!(v.dtype, 0 | 9) {
                continue;
            }
        }
        let mut result = null_mut();
        let status = nnrt_predict(model, &v, null(), &mut result);
        assert_ne!(status, NNRT_PANIC, "iteration {iteration}: {}", last_error());
        assert!((status == NNRT_OK) == !result.is_null(), "iteration {iteration}");
        if status != NNRT_OK {
            assert!(!last_error().is_empty());
        }
        nnrt_result_free(result);
        *outcomes.entry(status).or_insert(0) += 1;
    }
    // The generator reaches both sides: predictions and each kind of refusal.
    for status in [NNRT_OK, NNRT_INVALID_ARGUMENT, NNRT_INVALID_IMAGE, NNRT_SHAPE_MISMATCH] {
        assert!(outcomes.get(&status).is_some_and(|&n| n > 10), "{outcomes:?}");
    }
    nnrt_model_free(model);
}
