//! `nnunet-rt evaluate`: compares predicted label maps with reference label maps, case by case,
//! and prints Dice, MSD, HD95 and NSD per region as `mean ± std` (and medians), plus subtype
//! classification metrics when the true classes are given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use nnunet_rt::io::nifti::read_image;
use nnunet_rt::metrics::{
    aggregate, classification_report, complete_default_regions, default_regions, evaluate_labels, parse_regions,
    CaseMetrics, ClassificationReport, LabelBuffer, LabelVolume, Region, RegionSummary, Stats, Summary, Tolerances,
    HAUSDORFF_PERCENT,
};
use nnunet_rt::report::CaseReport;
use nnunet_rt::{Error, ErrorKind, Result};

/// Options of `nnunet-rt evaluate`.
#[derive(clap::Args)]
#[command(after_help = "PRED and REF are both label files (.nii/.nii.gz) or both folders of them; folders are \
matched by case name (the file name without .nii/.nii.gz). With --classes, the CASE.json files that \
`nnunet-rt predict` writes next to each predicted label map give the predicted classes.\n\n\
Example:\n  nnunet-rt evaluate --pred out/ --ref labelsTs/ --regions \"pancreas=1,2;lesion=2\" \\\n      \
--nsd-tolerance 2 --classes subtypes.csv --json metrics.json")]
pub struct EvaluateArgs {
    /// Predicted label map, or a folder of them.
    #[arg(long, value_name = "PRED")]
    pred: PathBuf,
    /// Reference label map, or a folder of them.
    #[arg(long = "ref", value_name = "REF")]
    reference: PathBuf,
    /// Regions as `name=label,label;name=label` (e.g. "pancreas=1,2;lesion=2"). Default: one
    /// region per foreground label present in the prediction or the reference.
    #[arg(long, value_name = "SPEC")]
    regions: Option<String>,
    /// NSD tolerance in mm: one value for every region, or `name=mm,name=mm` (other regions: 2).
    #[arg(long, value_name = "MM", default_value = "2")]
    nsd_tolerance: String,
    /// CSV file `case,class` (with a header line) of true classes; a class is a name or an
    /// integer index into the model's class names.
    #[arg(long, value_name = "CSV")]
    classes: Option<PathBuf>,
    /// Write every per-case value, the statistics and the classification metrics to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// One evaluated case.
#[derive(Serialize)]
struct CaseEntry {
    case: String,
    pred: String,
    #[serde(rename = "ref")]
    reference: String,
    #[serde(flatten)]
    metrics: CaseMetrics,
}

#[derive(Serialize)]
struct ClassifiedCase {
    case: String,
    true_class: String,
    predicted_class: String,
}

#[derive(Serialize)]
struct ClassificationOutput {
    #[serde(flatten)]
    report: ClassificationReport,
    cases: Vec<ClassifiedCase>,
}

#[derive(Serialize)]
struct Conventions {
    std: &'static str,
    hausdorff_percent: f64,
    msd: &'static str,
    one_empty_mask: &'static str,
    both_empty_masks: &'static str,
    combined: &'static str,
}

#[derive(Serialize)]
struct Report {
    pred: String,
    #[serde(rename = "ref")]
    reference: String,
    regions: Vec<Region>,
    conventions: Conventions,
    cases: Vec<CaseEntry>,
    summary: Summary,
    classification: Option<ClassificationOutput>,
    errors: Vec<String>,
}

/// Runs the evaluation. Problems with single cases (missing on one side, unreadable, mismatched)
/// are printed on stderr and the other cases are still evaluated and reported; the call then
/// fails so that the exit code is non-zero.
pub fn run(args: EvaluateArgs) -> Result<()> {
    let tolerances = Tolerances::parse(&args.nsd_tolerance)?;
    let explicit_regions = match &args.regions {
        Some(spec) => {
            let mut regions = parse_regions(spec)?;
            tolerances.apply(&mut regions)?;
            Some(regions)
        }
        None => None,
    };
    let (pred_cases, ref_cases) = match (args.pred.is_dir(), args.reference.is_dir()) {
        (true, true) => (list_folder(&args.pred)?, list_folder(&args.reference)?),
        (false, false) => {
            for path in [&args.pred, &args.reference] {
                if !path.is_file() {
                    return Err(Error::new(ErrorKind::Io, format!("no such file or folder {}", path.display())));
                }
            }
            let name = case_name(&args.reference).unwrap_or_else(|| "case".to_string());
            (BTreeMap::from([(name.clone(), args.pred.clone())]), BTreeMap::from([(name, args.reference.clone())]))
        }
        (pred_dir, _) => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "--pred {} is a {} but --ref {} is a {}; give two label files or two folders",
                    args.pred.display(),
                    if pred_dir { "folder" } else { "file" },
                    args.reference.display(),
                    if pred_dir { "file" } else { "folder" }
                ),
            ))
        }
    };

    let mut errors: Vec<String> = Vec::new();
    let mut report_error = |message: String| {
        eprintln!("nnunet-rt: error: {message}");
        errors.push(message);
    };
    for name in ref_cases.keys().filter(|c| !pred_cases.contains_key(*c)) {
        report_error(format!(
            "case {name}: in REF but not in PRED (no {name}.nii.gz or {name}.nii in {})",
            args.pred.display()
        ));
    }
    for name in pred_cases.keys().filter(|c| !ref_cases.contains_key(*c)) {
        report_error(format!(
            "case {name}: in PRED but not in REF (no {name}.nii.gz or {name}.nii in {})",
            args.reference.display()
        ));
    }

    let mut cases: Vec<CaseEntry> = Vec::new();
    for (name, ref_path) in &ref_cases {
        let Some(pred_path) = pred_cases.get(name) else { continue };
        match evaluate_case(pred_path, ref_path, explicit_regions.as_deref(), &tolerances) {
            Ok(metrics) => cases.push(CaseEntry {
                case: name.clone(),
                pred: pred_path.display().to_string(),
                reference: ref_path.display().to_string(),
                metrics,
            }),
            Err(err) => report_error(format!("case {name}: {err}")),
        }
    }

    let regions = match explicit_regions {
        Some(regions) => regions,
        None => {
            let mut metrics: Vec<_> = cases.iter().map(|c| c.metrics.clone()).collect();
            let regions = complete_default_regions(&mut metrics, &tolerances);
            for (case, complete) in cases.iter_mut().zip(metrics) {
                case.metrics = complete;
            }
            for (name, _) in tolerances.per_region.iter().filter(|(n, _)| !regions.iter().any(|r| &r.name == n)) {
                report_error(format!(
                    "NSD tolerance given for region \"{name}\", which no case has (regions: {:?})",
                    region_names(&regions)
                ));
            }
            regions
        }
    };
    let summary = aggregate(&cases.iter().map(|c| c.metrics.clone()).collect::<Vec<_>>());

    let classification = match &args.classes {
        Some(csv) => classify(csv, &pred_cases, &mut report_error),
        None => None,
    };

    print!("{}", format_cases(&cases));
    print!("{}", format_summary(&summary));
    if let Some(c) = &classification {
        print!("{}", format_classification(&c.report));
    }

    if let Some(path) = &args.json {
        let report = Report {
            pred: args.pred.display().to_string(),
            reference: args.reference.display().to_string(),
            regions,
            conventions: Conventions {
                std: "population (divisor n)",
                hausdorff_percent: HAUSDORFF_PERCENT,
                msd: "area-weighted mean distance over the surfels of both masks",
                one_empty_mask: "Dice 0, NSD 0, HD95 and MSD null per case; the image diagonal in the statistics",
                both_empty_masks: "Dice 1, NSD 1, HD95 0, MSD 0",
                combined: "per case the mean over regions, then statistics over cases",
            },
            cases,
            summary,
            classification,
            errors: errors.clone(),
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot encode the results as JSON: {e}")))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot write {}: {e}", path.display())).with_source(e))?;
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} problem(s) with the inputs (see above); the results cover only the cases that could be evaluated",
                errors.len()
            ),
        ))
    }
}

/// Case name of a label file: the file name without `.nii.gz` / `.nii`; None for other files.
fn case_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".nii.gz").or_else(|| name.strip_suffix(".nii"))?;
    (!stem.is_empty()).then(|| stem.to_string())
}

/// The label files of a folder by case name (hidden files ignored).
fn list_folder(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot list {}: {e}", dir.display())).with_source(e))?;
    let mut cases = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::new(ErrorKind::Io, format!("cannot list {}: {e}", dir.display())))?.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden || path.is_dir() {
            continue;
        }
        if let Some(name) = case_name(&path) {
            if let Some(previous) = cases.insert(name.clone(), path.clone()) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("case {name} is in {} twice: {} and {}", dir.display(), previous.display(), path.display()),
                ));
            }
        }
    }
    Ok(cases)
}

fn evaluate_case(
    pred_path: &Path,
    ref_path: &Path,
    regions: Option<&[Region]>,
    tolerances: &Tolerances,
) -> Result<CaseMetrics> {
    let (pred, reference) = rayon::join(|| read_labels(pred_path), || read_labels(ref_path));
    let (pred, reference) = (pred?, reference?);
    let pred_view = LabelVolume::new(LabelBuffer::F32(&pred.0), pred.1, pred.2)
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", pred_path.display(), e.message())))?;
    let ref_view = LabelVolume::new(LabelBuffer::F32(&reference.0), reference.1, reference.2)
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", ref_path.display(), e.message())))?;
    match regions {
        Some(regions) => evaluate_labels(&pred_view, &ref_view, regions),
        None => {
            nnunet_rt::metrics::check_pair(&pred_view, &ref_view)?;
            let regions = default_regions(&pred_view, &ref_view, tolerances);
            if regions.is_empty() {
                // Both maps are all background: nothing to measure, every label is empty in both.
                return Ok(CaseMetrics {
                    regions: Vec::new(),
                    dims: ref_view.dims(),
                    spacing: ref_view.spacing(),
                    diagonal_mm: ref_view.diagonal_mm(),
                });
            }
            evaluate_labels(&pred_view, &ref_view, &regions)
        }
    }
}

/// Labels, dims and spacing of a single-channel label file.
fn read_labels(path: &Path) -> Result<(Vec<f32>, [usize; 3], [f64; 3])> {
    let image = read_image(path)?;
    let v = image.volume;
    if v.channels != 1 {
        return Err(Error::new(
            ErrorKind::InvalidImage,
            format!("{} has {} channels; a label map has one", path.display(), v.channels),
        ));
    }
    Ok((v.data, v.dims, v.geometry.spacing))
}

fn region_names(regions: &[Region]) -> Vec<&str> {
    regions.iter().map(|r| r.name.as_str()).collect()
}

/// A model prediction's class as read from `CASE.json`.
struct PredictedClass {
    index: Option<usize>,
    name: Option<String>,
    class_names: Option<Vec<String>>,
}

fn read_prediction_json(path: &Path) -> std::result::Result<PredictedClass, String> {
    let report = CaseReport::read(path).map_err(|e| e.message().to_string())?;
    let c = report.classification.ok_or_else(|| format!("{} has no \"classification\" object", path.display()))?;
    if c.predicted_class.is_none() && c.predicted_class_name.is_none() {
        return Err(format!("{} has neither \"predicted_class\" nor \"predicted_class_name\"", path.display()));
    }
    let class_names = (!c.class_names.is_empty()).then_some(c.class_names);
    Ok(PredictedClass { index: c.predicted_class, name: c.predicted_class_name, class_names })
}

/// Reads `case,class` rows after a header line (the `csv` crate: quoting, spaces around fields).
fn read_truth_csv(path: &Path, report_error: &mut impl FnMut(String)) -> Option<BTreeMap<String, String>> {
    let mut reader = match csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_path(path) {
        Ok(reader) => reader,
        Err(e) => {
            report_error(format!("cannot read the classes file {}: {e}", path.display()));
            return None;
        }
    };
    let mut truth = BTreeMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                report_error(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != 2 || record[0].is_empty() || record[1].is_empty() {
            let got = record.iter().collect::<Vec<_>>().join(",");
            report_error(format!("{} line {line}: expected \"case,class\", got \"{got}\"", path.display()));
            continue;
        }
        if truth.insert(record[0].to_string(), record[1].to_string()).is_some() {
            report_error(format!("{} line {line}: case {} is listed twice", path.display(), &record[0]));
        }
    }
    Some(truth)
}

/// Classification metrics over the cases with both a true class (CSV) and a predicted class
/// (`CASE.json` next to the predicted label map).
fn classify(
    csv: &Path,
    pred_cases: &BTreeMap<String, PathBuf>,
    report_error: &mut impl FnMut(String),
) -> Option<ClassificationOutput> {
    let truth = read_truth_csv(csv, report_error)?;
    let mut predictions: BTreeMap<String, PredictedClass> = BTreeMap::new();
    let mut case_names: Vec<&String> = truth.keys().chain(pred_cases.keys()).collect();
    case_names.sort();
    case_names.dedup();
    for name in &case_names {
        let Some(label_path) = pred_cases.get(*name) else {
            report_error(format!("case {name}: in {} but has no predicted label map", csv.display()));
            continue;
        };
        let json_path = label_path.with_file_name(format!("{name}.json"));
        match read_prediction_json(&json_path) {
            Ok(p) => {
                predictions.insert((*name).clone(), p);
            }
            Err(message) => report_error(format!("case {name}: {message}")),
        }
    }
    let class_names: Option<Vec<String>> = predictions.values().find_map(|p| p.class_names.clone());
    let names: Vec<String> = match &class_names {
        Some(names) => names.clone(),
        None => {
            let max = predictions
                .values()
                .filter_map(|p| p.index)
                .chain(truth.values().filter_map(|t| t.parse::<usize>().ok()))
                .max()
                .unwrap_or(0);
            (0..=max).map(|i| i.to_string()).collect()
        }
    };
    let resolve = |value: &str| -> Option<usize> {
        names.iter().position(|n| n == value).or_else(|| value.parse::<usize>().ok().filter(|&i| i < names.len()))
    };
    let (mut true_idx, mut pred_idx, mut listed) = (Vec::new(), Vec::new(), Vec::new());
    for (name, p) in &predictions {
        if let (Some(own), Some(all)) = (&p.class_names, &class_names) {
            if own != all {
                report_error(format!("case {name}: class names {own:?} differ from {all:?} of the other cases"));
                continue;
            }
        }
        let Some(t) = truth.get(name) else {
            report_error(format!("case {name}: no true class in {}", csv.display()));
            continue;
        };
        let Some(ti) = resolve(t) else {
            report_error(format!("case {name}: true class \"{t}\" is not one of the classes {names:?}"));
            continue;
        };
        let predicted = p.index.filter(|&i| i < names.len()).or_else(|| p.name.as_deref().and_then(resolve));
        let Some(pi) = predicted else {
            report_error(format!(
                "case {name}: predicted class {} is not one of the classes {names:?}",
                p.index.map_or_else(|| format!("\"{}\"", p.name.clone().unwrap_or_default()), |i| i.to_string())
            ));
            continue;
        };
        true_idx.push(ti);
        pred_idx.push(pi);
        listed.push(ClassifiedCase {
            case: name.clone(),
            true_class: names[ti].clone(),
            predicted_class: names[pi].clone(),
        });
    }
    match classification_report(&true_idx, &pred_idx, &names) {
        Ok(report) => Some(ClassificationOutput { report, cases: listed }),
        Err(e) => {
            report_error(format!("classification: {e}"));
            None
        }
    }
}

fn fmt_value(v: f64, percent: bool) -> String {
    if v.is_nan() {
        "n/a".to_string()
    } else if percent {
        format!("{:.1}", 100.0 * v)
    } else {
        format!("{v:.3}")
    }
}

fn fmt_mean_std(s: &Stats, percent: bool) -> String {
    if s.mean.is_nan() {
        return "n/a".to_string();
    }
    format!("{} ± {}", fmt_value(s.mean, percent), fmt_value(s.std, percent))
}

fn name_width<'a>(names: impl Iterator<Item = &'a str>, minimum: usize) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0).max(minimum) + 2
}

fn format_cases(cases: &[CaseEntry]) -> String {
    let mut out = String::new();
    if cases.is_empty() {
        return out;
    }
    let cw = name_width(cases.iter().map(|c| c.case.as_str()), 4);
    let rw = name_width(cases.iter().flat_map(|c| c.metrics.regions.iter().map(|r| r.region.as_str())), 6);
    let _ = writeln!(out, "{:cw$}{:rw$}{:<8}{:<10}{:<11}NSD (%)", "case", "region", "Dice", "MSD (mm)", "HD95 (mm)");
    for case in cases {
        for r in &case.metrics.regions {
            let _ = writeln!(
                out,
                "{:cw$}{:rw$}{:<8}{:<10}{:<11}{}",
                case.case,
                r.region,
                fmt_value(r.dice, false),
                fmt_value(r.msd, false),
                fmt_value(r.hd95, false),
                fmt_value(r.nsd, true)
            );
        }
    }
    out.push('\n');
    out
}

fn format_summary(summary: &Summary) -> String {
    let mut out = String::new();
    if summary.n_cases == 0 {
        out.push_str("no case could be evaluated\n");
        return out;
    }
    let rows: Vec<&RegionSummary> = summary.regions.iter().chain(std::iter::once(&summary.combined)).collect();
    let w = name_width(rows.iter().map(|r| r.region.as_str()), 8);
    let table = |title: String, cells: &dyn Fn(&RegionSummary) -> [String; 4]| -> String {
        let body: Vec<[String; 4]> = rows.iter().map(|r| cells(r)).collect();
        let cw = body.iter().flatten().map(|c| c.chars().count()).max().unwrap_or(0).max(9) + 2;
        let mut t =
            format!("{title}\n{:w$}{:<cw$}{:<cw$}{:<cw$}{}\n", "region", "Dice", "MSD (mm)", "HD95 (mm)", "NSD (%)");
        for (r, c) in rows.iter().zip(&body) {
            t += &format!("{:w$}{:<cw$}{:<cw$}{:<cw$}{}\n", r.region, c[0], c[1], c[2], c[3]);
        }
        t
    };
    out += &table(format!("{} case(s), mean ± std (population):", summary.n_cases), &|r| {
        [
            fmt_mean_std(&r.dice, false),
            fmt_mean_std(&r.msd, false),
            fmt_mean_std(&r.hd95, false),
            fmt_mean_std(&r.nsd, true),
        ]
    });
    out += &table("\nmedian:".to_string(), &|r| {
        [
            fmt_value(r.dice.median, false),
            fmt_value(r.msd.median, false),
            fmt_value(r.hd95.median, false),
            fmt_value(r.nsd.median, true),
        ]
    });
    let substituted: usize = summary.regions.iter().map(|r| r.hd95.n_worst_case).sum();
    if substituted > 0 {
        let _ = writeln!(
            out,
            "\n{substituted} region/case pair(s) with exactly one empty mask: MSD and HD95 counted as the image diagonal"
        );
    }
    out
}

fn format_classification(r: &ClassificationReport) -> String {
    let mut out = String::new();
    let w = name_width(r.classes.iter().map(|c| c.class.as_str()), 5);
    let _ = writeln!(out, "\nclassification, {} case(s): accuracy {:.3}, macro-F1 {:.3}", r.n, r.accuracy, r.macro_f1);
    let _ = writeln!(out, "{:w$}{:<11}{:<8}{:<7}support", "class", "precision", "recall", "F1");
    for c in &r.classes {
        let _ = writeln!(out, "{:w$}{:<11.3}{:<8.3}{:<7.3}{}", c.class, c.precision, c.recall, c.f1, c.support);
    }
    let cell = r.classes.iter().map(|c| c.class.chars().count()).max().unwrap_or(1).max(4) + 2;
    let _ = writeln!(out, "confusion matrix (rows: true class, columns: predicted class)");
    let _ = write!(out, "{:w$}", "");
    for c in &r.classes {
        let _ = write!(out, "{:>cell$}", c.class);
    }
    out.push('\n');
    for (c, row) in r.classes.iter().zip(&r.confusion) {
        let _ = write!(out, "{:w$}", c.class);
        for n in row {
            let _ = write!(out, "{n:>cell$}");
        }
        out.push('\n');
    }
    out
}
