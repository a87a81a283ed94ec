//! `nnunet-rt predict` and `nnunet-rt info`.

use std::io::Write;
use std::path::{Path, PathBuf};

use nnunet_rt::io::nifti::{self, LabelData};
use nnunet_rt::io::npy;
use nnunet_rt::report::{CaseFiles, CaseReport};
use nnunet_rt::{
    ClassificationPolicy, Device, Error, ErrorKind, Labels, LoadOptions, Model, NetworkPrecision, Precision,
    PredictOptions, Prediction, Result, Stage,
};

use crate::interrupt::Interrupt;

/// Options shared by commands that load a model.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// nnU-Net v2 model folder (plans.json, dataset.json, fold_N/model.onnx), or a dataset's
    /// results folder with the inference_information.json of nnUNetv2_find_best_configuration
    /// (runs the configuration(s) and postprocessing it selected). Several folders: an ensemble,
    /// as nnUNetv2_ensemble combines them
    #[arg(short = 'm', long = "model", num_args = 1.., required = true)]
    model: Vec<PathBuf>,
    /// Folds to use, e.g. `-f 0 1 2` (default: every exported fold)
    #[arg(short = 'f', long = "folds", num_args = 1..)]
    folds: Vec<String>,
    /// Where the network runs: auto (OpenVINO on the CPU when its plugin loads, else ONNX
    /// Runtime's CPU provider), cpu (ONNX Runtime's CPU provider), openvino, cuda or cuda:N
    #[arg(long, default_value = "auto", value_parser = parse_name::<Device>)]
    device: Device,
    /// Arithmetic of the network itself: f32 (nnU-Net's answer) or bf16 (opt-in, OpenVINO on
    /// CPUs with AVX512_BF16/AMX: several times faster, changes a few voxels; see BENCHMARKS.md).
    /// Not the same as --precision, which is the accumulation of logits around the network
    #[arg(long = "network-precision", default_value = "f32", value_parser = parse_name::<NetworkPrecision>)]
    network_precision: NetworkPrecision,
    /// Threads of the network (ONNX Runtime intra-op or OpenVINO inference threads; default: one per core)
    #[arg(long)]
    threads: Option<usize>,
    /// On CUDA, allow TF32 tensor-core convolutions (faster, slightly less precise)
    #[arg(long)]
    tf32: bool,
    /// Path of libonnxruntime.so (default: NNUNET_RT_ORT_LIB, ORT_DYLIB_PATH, next to the binary, the fetched copy)
    #[arg(long = "ort-lib")]
    ort_lib: Option<PathBuf>,
    /// Path of libonnxruntime_providers_openvino_plugin.so (default: NNUNET_RT_OPENVINO_LIB, next to
    /// the binary or ONNX Runtime, the fetched copy)
    #[arg(long = "openvino-lib")]
    openvino_lib: Option<PathBuf>,
    /// OpenVINO: cache compiled networks in this folder (later loads skip compilation)
    #[arg(long = "openvino-cache-dir")]
    openvino_cache_dir: Option<PathBuf>,
    /// Apply this postprocessing.json (nnU-Net's determine_postprocessing output) instead of the
    /// folder's own
    #[arg(long = "postprocessing", conflicts_with = "no_postprocessing")]
    postprocessing: Option<PathBuf>,
    /// Apply no postprocessing, even when the folder provides one
    #[arg(long = "no-postprocessing")]
    no_postprocessing: bool,
    /// A cascade's previous-stage model folder (default: nnU-Net's sibling folder
    /// <trainer>__<plans>__<previous_stage>, e.g. ...__3d_lowres)
    #[arg(long = "previous-stage-model")]
    previous_stage_model: Option<PathBuf>,
}

impl ModelArgs {
    fn load(&self) -> Result<Model> {
        let options = LoadOptions {
            folds: (!self.folds.is_empty()).then(|| self.folds.clone()),
            device: self.device,
            network_precision: self.network_precision,
            intra_threads: self.threads,
            allow_tf32: self.tf32,
            ort_library: self.ort_lib.clone(),
            openvino_library: self.openvino_lib.clone(),
            openvino_cache_dir: self.openvino_cache_dir.clone(),
            postprocessing_file: self.postprocessing.clone(),
            skip_postprocessing: self.no_postprocessing,
            previous_stage_model: self.previous_stage_model.clone(),
        };
        match &self.model[..] {
            [one] => Model::load(one, &options),
            several => Model::ensemble(several, &options),
        }
    }
}

/// Parses a value with the library's own names (one vocabulary for every surface).
fn parse_name<T: std::str::FromStr<Err = Error>>(text: &str) -> std::result::Result<T, String> {
    text.parse::<T>().map_err(|e| e.message().to_string())
}

/// Arguments of `predict`.
#[derive(clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Input: a .nii/.nii.gz file, or a folder of CASE_0000.nii.gz (CASE_0001...) channel files
    #[arg(short = 'i', long = "input")]
    input: PathBuf,
    /// Output: a label file for a file input, a folder for a folder input
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Sliding-window step as a fraction of the patch size, in (0, 1]
    #[arg(long = "step-size", default_value_t = 0.5)]
    step_size: f64,
    /// Skip mirroring test-time augmentation (up to 8x faster)
    #[arg(long = "disable-tta")]
    disable_tta: bool,
    /// Also write per-class softmax probabilities (CASE_probabilities.npy, float32, classes x z x y x)
    #[arg(long = "save-probabilities")]
    save_probabilities: bool,
    /// Case-level classification policy for models with a classification head: lesion-voxels
    /// (tiles weighted by the lesion voxels they label), lesion-weighted (by soft lesion volume) or mean
    #[arg(long = "classification-policy", default_value = "lesion-voxels", value_parser = parse_name::<ClassificationPolicy>)]
    classification_policy: ClassificationPolicy,
    /// Logit accumulation around the network: `half` reproduces nnU-Net exactly, `single` is more
    /// accurate (not the network's arithmetic: see --network-precision)
    #[arg(long, default_value = "half", value_parser = parse_name::<Precision>)]
    precision: Precision,
    /// Refuse a case up front when its estimated peak memory exceeds this (bytes, or with K/M/G)
    #[arg(long = "memory-limit", value_parser = parse_bytes)]
    memory_limit: Option<u64>,
    /// Opt-in: a cheap first pass finds the foreground, the full pass runs only tiles near it
    /// (faster; not nnU-Net's algorithm, see BENCHMARKS.md for its agreement)
    #[arg(long = "roi-focus")]
    roi_focus: bool,
    /// No progress bar
    #[arg(short = 'q', long)]
    quiet: bool,
}

fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let (digits, scale) = match text.trim().to_ascii_uppercase() {
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 1u64 << 30),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 1 << 20),
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 1 << 10),
        t => (t, 1),
    };
    digits
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| (v * scale as f64) as u64)
        .ok_or_else(|| format!("{text:?} is not a size like 8G, 512M or 1000000"))
}

/// One case to predict: its channel files and where its outputs go.
struct Case {
    id: String,
    inputs: Vec<PathBuf>,
    output: PathBuf,
}

pub fn run(args: PredictArgs, interrupt: &Interrupt) -> Result<()> {
    let options = PredictOptions {
        step_size: args.step_size,
        mirroring: !args.disable_tta,
        probabilities: args.save_probabilities,
        classification_policy: args.classification_policy,
        precision: args.precision,
        memory_limit: args.memory_limit,
        roi_focus: args.roi_focus,
    };
    // Bad arguments fail before the model or any file is touched.
    options.validate()?;
    let cases = cases(&args.input, &args.output)?;
    let model = args.model.load()?;
    if !args.quiet {
        eprintln!("nnunet-rt: {}", describe_model(&model));
    }
    // A signal also interrupts the network pass in progress (Model::cancel), not only the next
    // progress report: on ONNX Runtime's CPU provider the stop then comes within about a second.
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !finished.load(std::sync::atomic::Ordering::SeqCst) {
                if interrupt.received().is_some() {
                    model.cancel();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let outcome = predict_cases(&model, &cases, &options, args.quiet, interrupt);
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        outcome
    })
}

/// Predicts every case in turn; a failed case is reported and the others go on, a signal stops.
fn predict_cases(
    model: &Model,
    cases: &[Case],
    options: &PredictOptions,
    quiet: bool,
    interrupt: &Interrupt,
) -> Result<()> {
    let mut failures = 0;
    let mut done = 0;
    for case in cases {
        if let Some(sig) = interrupt.received() {
            return Err(interrupted(sig, done, cases.len()));
        }
        match predict_case(model, case, options, quiet, interrupt) {
            Ok(()) => done += 1,
            Err(err) => match interrupt.received() {
                Some(sig) if err.kind() == ErrorKind::Cancelled => {
                    if !quiet {
                        eprintln!();
                    }
                    return Err(interrupted(sig, done, cases.len()));
                }
                _ => {
                    eprintln!("nnunet-rt: error: case {}: {err}", case.id);
                    failures += 1;
                }
            },
        }
    }
    if let Some(sig) = interrupt.received() {
        return Err(interrupted(sig, done, cases.len()));
    }
    if failures > 0 {
        return Err(Error::new(ErrorKind::InvalidArgument, format!("{failures} of {} case(s) failed", cases.len())));
    }
    Ok(())
}

/// The error of a run stopped by a signal: what was finished, and that nothing partial is left.
fn interrupted(sig: i32, done: usize, total: usize) -> Error {
    Error::new(
        ErrorKind::Cancelled,
        format!(
            "interrupted by {} after {done} of {total} case(s); the case in progress wrote nothing",
            Interrupt::name(sig)
        ),
    )
}

fn predict_case(
    model: &Model,
    case: &Case,
    options: &PredictOptions,
    quiet: bool,
    interrupt: &Interrupt,
) -> Result<()> {
    let started = std::time::Instant::now();
    let image = nifti::read_channels(&case.inputs)?;
    let read_time = started.elapsed();
    let view = image.volume.view()?;
    let mut bar = ProgressBar::new(&case.id, quiet);
    let prediction = model.predict(&view, options, &mut |stage, fraction| {
        bar.update(stage, fraction);
        interrupt.received().is_none()
    })?;
    bar.finish();
    let write_start = std::time::Instant::now();
    let labels = match &prediction.labels {
        Labels::U8(v) => LabelData::U8(v),
        Labels::U16(v) => LabelData::U16(v),
    };
    nifti::write_labels(&case.output, labels, prediction.dims, &image.header)?;
    let stem = case_stem(&case.output);
    let sidecar = case.output.with_file_name(format!("{stem}.json"));
    let mut written = vec![case.output.clone()];
    let result: Result<()> = (|| {
        if let Some(probabilities) = &prediction.probabilities {
            let [x, y, z] = prediction.dims;
            let path = case.output.with_file_name(format!("{stem}_probabilities.npy"));
            npy::write_f32(&path, &[prediction.label_names.len(), z, y, x], probabilities)?;
            written.push(path);
        }
        let files = CaseFiles {
            case: &case.id,
            inputs: &case.inputs,
            output: &case.output,
            read: read_time,
            write: write_start.elapsed(),
        };
        let report = CaseReport::new(model, &files, &prediction, options);
        std::fs::write(&sidecar, report.to_json()).map_err(|e| Error::io("cannot write", &sidecar, e))?;
        Ok(())
    })();
    if result.is_err() {
        // No partial outputs: a case is either complete or absent.
        for path in &written {
            let _ = std::fs::remove_file(path);
        }
    }
    result?;
    if !quiet {
        summarise(case, &prediction);
    }
    Ok(())
}

fn summarise(case: &Case, p: &Prediction) {
    let counts = p.labels.counts(p.label_names.len());
    let labels: Vec<String> = p.label_names.iter().zip(&counts).map(|(n, c)| format!("{n} {c}")).collect();
    let mut line =
        format!("{}: {} -> {} [{}]", case.id, case.inputs[0].display(), case.output.display(), labels.join(", "));
    if let Some(c) = &p.classification {
        line += &format!("; class {} (p = {:.3})", c.class_names[c.predicted], c.probabilities[c.predicted]);
    }
    line += &format!(
        "; {:.1} s ({} tiles x {} fold(s) x {} pass(es))",
        (p.timings.preprocess + p.timings.network + p.timings.export).as_secs_f64(),
        p.tiles,
        p.folds.len(),
        p.passes_per_tile
    );
    if p.configurations.len() > 1 {
        line += &format!(", ensemble of {} ({} network passes)", p.configurations.join(" + "), p.network_passes);
    }
    if p.postprocessing.iter().any(|step| step.removed_voxels > 0) {
        let removed: u64 = p.postprocessing.iter().map(|step| step.removed_voxels).sum();
        line += &format!(", postprocessing removed {removed} voxels");
    }
    eprintln!("{line}");
}

/// File name without `.nii` / `.nii.gz`.
fn case_stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("case");
    name.trim_end_matches(".gz").trim_end_matches(".nii").to_string()
}

fn is_nifti(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".nii") || n.ends_with(".nii.gz"))
}

/// Cases from a file (one case) or a folder (CASE_XXXX.nii.gz channel files, nnU-Net's naming).
fn cases(input: &Path, output: &Path) -> Result<Vec<Case>> {
    if input.is_file() {
        if !is_nifti(input) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{} is not a .nii or .nii.gz file", input.display()),
            ));
        }
        if output.is_dir() || !is_nifti(output) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("for a file input, the output {} must be a .nii or .nii.gz file path", output.display()),
            ));
        }
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(Error::new(ErrorKind::Io, format!("output folder {} does not exist", parent.display())));
            }
        }
        let stem = case_stem(input);
        let id = channel_suffix(&stem).map_or(stem.clone(), |i| stem[..i].to_string());
        return Ok(vec![Case { id, inputs: vec![input.to_path_buf()], output: output.to_path_buf() }]);
    }
    if !input.is_dir() {
        return Err(Error::new(ErrorKind::Io, format!("input {} does not exist", input.display())));
    }
    let mut groups: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for entry in std::fs::read_dir(input).map_err(|e| Error::io("cannot list", input, e))? {
        let path = entry.map_err(|e| Error::io("cannot list", input, e))?.path();
        if !is_nifti(&path) {
            continue;
        }
        let stem = case_stem(&path);
        // CASE_0000: the last 5 characters are the channel suffix.
        match channel_suffix(&stem) {
            Some(i) => groups.entry(stem[..i].to_string()).or_default().push(path),
            None => eprintln!("nnunet-rt: warning: skipping {} (not named CASE_XXXX.nii.gz)", path.display()),
        }
    }
    if groups.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{} holds no CASE_XXXX.nii.gz files", input.display()),
        ));
    }
    std::fs::create_dir_all(output).map_err(|e| Error::io("cannot create", output, e))?;
    Ok(groups
        .into_iter()
        .map(|(id, mut inputs)| {
            inputs.sort();
            let output = output.join(format!("{id}.nii.gz"));
            Case { id, inputs, output }
        })
        .collect())
}

/// Position of nnU-Net's `_XXXX` channel suffix in a file stem, if it has one.
fn channel_suffix(stem: &str) -> Option<usize> {
    stem.len()
        .checked_sub(5)
        .filter(|&i| stem.as_bytes()[i] == b'_' && stem[i + 1..].bytes().all(|b| b.is_ascii_digit()))
}

/// A one-line progress bar on stderr.
struct ProgressBar {
    case: String,
    quiet: bool,
    last: Option<(Stage, u32)>,
}

impl ProgressBar {
    fn new(case: &str, quiet: bool) -> Self {
        ProgressBar { case: case.to_string(), quiet, last: None }
    }

    fn update(&mut self, stage: Stage, fraction: f64) {
        let percent = (fraction * 100.0).round() as u32;
        if self.quiet || self.last == Some((stage, percent)) {
            return;
        }
        self.last = Some((stage, percent));
        let filled = (fraction * 30.0).round() as usize;
        eprint!(
            "\r{} {:<10} [{}{}] {:3}%",
            self.case,
            stage.name(),
            "#".repeat(filled),
            " ".repeat(30 - filled.min(30)),
            percent
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&mut self) {
        if !self.quiet {
            eprint!("\r{}\r", " ".repeat(self.case.len() + 50));
        }
    }
}

/// What runs: the configuration(s), folds and postprocessing, in one line.
fn describe_model(model: &Model) -> String {
    let configurations: Vec<&str> = model.configurations().iter().map(|c| c.plan().configuration.as_str()).collect();
    let what = match model.selection() {
        Some(selection) => format!("inference_information.json selects {}", selection.describe()),
        None if configurations.len() > 1 => format!("ensemble of {}", configurations.join(" + ")),
        None => format!("{}, folds {}", configurations[0], model.fold_names().join(", ")),
    };
    let (postprocessing, source) = model.postprocessing();
    match source {
        Some(path) => format!("{what}; postprocessing: {postprocessing} ({})", path.display()),
        None => format!("{what}; no postprocessing"),
    }
}

/// Arguments of `info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
}

pub fn info(args: InfoArgs) -> Result<()> {
    let model = args.model.load()?;
    let plan = model.plan();
    let folder = model.folder();
    // Network axis names, for what only makes sense in the network's order (the slice axis).
    let order = plan.to_network_axes(["x", "y", "z"]);
    println!("model        {}", folder.dir.display());
    println!("runs         {}", describe_model(&model));
    for member in &model.configurations()[1..] {
        println!("member       {} ({})", member.folder().dir.display(), member.plan().configuration);
    }
    for configuration in model.configurations() {
        if let Some(previous) = configuration.previous_stage() {
            println!(
                "cascade      {} runs after {} ({}), whose labels become {} extra input channel(s)",
                configuration.plan().configuration,
                previous.plan().configuration,
                previous.folder().dir.display(),
                configuration.plan().foreground_labels().len()
            );
        }
    }
    match plan.network_dims {
        2 => println!("config       {} (2-D network over every slice along {})", plan.configuration, order[0]),
        _ => println!("config       {}", plan.configuration),
    }
    println!(
        "channels     {}",
        plan.channel_names.iter().enumerate().map(|(i, n)| format!("{i}: {n}")).collect::<Vec<_>>().join(", ")
    );
    println!("normalise    {}", plan.normalization.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join("; "));
    println!(
        "labels       {}",
        plan.labels.iter().map(|l| format!("{}: {}", l.value, l.name)).collect::<Vec<_>>().join(", ")
    );
    if let Some(regions) = &plan.regions {
        let described: Vec<String> = regions
            .iter()
            .map(|r| {
                let labels: Vec<String> = r.labels.iter().map(u32::to_string).collect();
                format!("{} = {{{}}} -> {}", r.name, labels.join(", "), r.value)
            })
            .collect();
        println!("regions      {} (sigmoid > 0.5, written in this order)", described.join("; "));
    }
    // Spacing and patch in x, y, z like every other API; a 2-D network keeps the input's slice spacing.
    let spacing: Vec<String> = plan
        .to_caller_axes(plan.spacing.map(|s| (s > 0.0).then_some(s)))
        .iter()
        .map(|s| s.map_or("input's".to_string(), |s| s.to_string()))
        .collect();
    println!("spacing      [{}] mm (x, y, z)", spacing.join(", "));
    println!("patch        {:?} voxels (x, y, z)", plan.to_caller_axes(plan.patch_size));
    println!("folds        {}", model.fold_names().join(", "));
    let mirrored: Vec<&str> = folder.mirroring_axes.iter().map(|&a| order[a]).collect();
    println!("mirroring    {}", if mirrored.is_empty() { "off".to_string() } else { mirrored.join(", ") });
    match &folder.classification {
        Some(c) => println!("head classes {}", c.class_names.join(", ")),
        None => println!("head classes none (segmentation only)"),
    }
    if let Some(runtime) = model.runtime_info() {
        println!(
            "network      {} on {} ({}), {} threads",
            runtime.network_precision,
            runtime.device,
            runtime.execution_provider,
            runtime.threads.map_or("default".to_string(), |n| n.to_string())
        );
        if let Some(reason) = &runtime.auto_fallback_reason {
            println!("             auto chose ONNX Runtime's CPU provider: {reason}");
        }
        println!(
            "runtime      ONNX Runtime {} ({})",
            runtime.onnxruntime_version,
            runtime.onnxruntime_library.display()
        );
        if let Some(openvino) = &runtime.openvino {
            println!(
                "openvino     plugin {} ({}), CPU {} [{}]",
                openvino.version,
                openvino.path.display(),
                openvino.cpu_name,
                openvino.capabilities.join(" ")
            );
        }
    }
    Ok(())
}
