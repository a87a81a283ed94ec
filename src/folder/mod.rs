//! A trained model folder as nnU-Net writes it (`plans.json`, `dataset.json`, `fold_N/`), plus
//! what `tools/export_onnx.py` adds to each fold (`model.onnx`, `nnunet_rt_export.json`).

pub mod bundle;
mod plans;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

pub use bundle::Bundle;
pub use plans::{Label, Normalization, Plan, Region, ResamplingSpec};

use crate::error::{Error, ErrorKind, Result};

/// File the exporter writes next to each fold's `model.onnx`.
pub const EXPORT_METADATA_FILE: &str = "nnunet_rt_export.json";
/// ONNX file name inside each fold folder.
pub const ONNX_FILE: &str = "model.onnx";
/// Role of the output that holds segmentation logits.
pub const ROLE_SEGMENTATION: &str = "segmentation_logits";
/// Role of the output that holds classification logits.
pub const ROLE_CLASSIFICATION: &str = "classification_logits";

/// One input or output of the exported network.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TensorSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// What the output holds (`segmentation_logits`, `classification_logits`); empty for inputs.
    #[serde(default)]
    pub role: String,
    /// Shape, with `"batch"` for the dynamic batch axis.
    #[serde(default)]
    pub shape: Vec<Value>,
}

/// The classification head's description.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClassificationSpec {
    /// One name per head output.
    pub class_names: Vec<String>,
    /// Labels whose predicted volume weights each tile's class evidence (default: the highest label).
    #[serde(default)]
    pub evidence_labels: Option<Vec<u32>>,
}

/// `fold_N/nnunet_rt_export.json`: what the checkpoint knew that ONNX does not say.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ExportMetadata {
    /// Always `nnunet-rt-export`.
    pub format: String,
    /// Schema version (1).
    pub format_version: u32,
    /// Configuration the fold was trained with, e.g. `3d_fullres`.
    #[serde(default = "default_configuration")]
    pub configuration: String,
    /// Trainer class name.
    #[serde(default)]
    pub trainer_name: String,
    /// Axes (of the spatial array) mirroring TTA may flip; `None` disables TTA, as in nnU-Net.
    pub inference_allowed_mirroring_axes: Option<Vec<usize>>,
    /// Network input.
    pub input: TensorSpec,
    /// Network outputs with their roles.
    pub outputs: Vec<TensorSpec>,
    /// The classification head, when the network has one.
    #[serde(default)]
    pub classification: Option<ClassificationSpec>,
}

fn default_configuration() -> String {
    "3d_fullres".to_string()
}

impl ExportMetadata {
    /// The output with `role`, if any.
    pub fn output(&self, role: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|o| o.role == role)
    }
}

/// Where a model folder's files are read from: a folder on disk, or a folder inside a bundle
/// held in memory.
#[derive(Debug, Clone)]
pub enum Source {
    /// A folder.
    Dir(PathBuf),
    /// The files of `bundle` whose names start with `prefix` (empty, or ending in `/`).
    Bundle {
        /// The parsed bundle.
        bundle: Arc<Bundle>,
        /// Folder inside the bundle.
        prefix: String,
    },
}

impl Source {
    /// The same folder's file `name` ('/'-separated, relative), for messages and for reading.
    pub fn path_of(&self, name: &str) -> PathBuf {
        match self {
            Source::Dir(dir) if name.is_empty() => dir.clone(),
            Source::Dir(dir) => dir.join(name),
            Source::Bundle { prefix, .. } => {
                PathBuf::from(format!("<bundle>/{prefix}{name}").trim_end_matches('/').to_string())
            }
        }
    }

    /// Whether the folder holds file `name`.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(name).is_file(),
            Source::Bundle { bundle, prefix } => bundle.get(&format!("{prefix}{name}")).is_some(),
        }
    }

    /// The bytes of file `name`; a missing file is `InvalidModel` naming it.
    pub fn read(&self, name: &str) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            Source::Dir(dir) => {
                let path = dir.join(name);
                std::fs::read(&path).map(std::borrow::Cow::Owned).map_err(|e| {
                    Error::new(ErrorKind::InvalidModel, format!("cannot read {}: {e}", path.display())).with_source(e)
                })
            }
            Source::Bundle { bundle, prefix } => bundle
                .get(&format!("{prefix}{name}"))
                .map(std::borrow::Cow::Borrowed)
                .ok_or_else(|| Error::invalid_model(format!("the model bundle has no {prefix}{name}"))),
        }
    }

    /// The folder `sub` ('/'-terminated) inside this one.
    pub fn child(&self, sub: &str) -> Source {
        match self {
            Source::Dir(dir) => Source::Dir(dir.join(sub.trim_end_matches('/'))),
            Source::Bundle { bundle, prefix } => {
                Source::Bundle { bundle: bundle.clone(), prefix: format!("{prefix}{sub}") }
            }
        }
    }

    /// Names of `fold_*` folders that hold an exported model, numerically sorted (`all` last).
    fn exported_folds(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match self {
            Source::Dir(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().join(ONNX_FILE).is_file())
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("fold_")).map(str::to_string))
                    .collect()
            }
            Source::Bundle { bundle, prefix } => bundle
                .names()
                .filter_map(|n| {
                    n.strip_prefix(prefix.as_str())?.strip_prefix("fold_")?.strip_suffix(&format!("/{ONNX_FILE}"))
                })
                .filter(|fold| !fold.contains('/'))
                .map(str::to_string)
                .collect(),
        };
        names.sort_by_key(|n| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
        Ok(names)
    }
}

/// One fold of the model: its name (`0`, `all`...), ONNX file and export metadata.
#[derive(Debug, Clone)]
pub struct Fold {
    /// Fold name as in `fold_<name>`.
    pub name: String,
    /// Path of `model.onnx` (inside the bundle for a bundled model: `<bundle>/fold_0/model.onnx`).
    pub onnx_path: PathBuf,
    /// Name of `model.onnx` relative to the folder (read it with [`Source::read`]).
    pub onnx_name: String,
    /// Its metadata file.
    pub metadata: ExportMetadata,
}

/// A model folder, read and checked, without any ONNX Runtime session yet.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    /// The folder (`<bundle>/...` for a bundled model).
    pub dir: PathBuf,
    /// Where its files are read from.
    pub source: Source,
    /// The resolved configuration.
    pub plan: Plan,
    /// Folds in use, in the order their logits are summed.
    pub folds: Vec<Fold>,
    /// Mirroring axes from the first fold (nnU-Net reads them from the first checkpoint only), as
    /// axes of the transposed 3-D array: a 2-D network's axes (0, 1) are the array's (1, 2).
    pub mirroring_axes: Vec<usize>,
    /// The classification head, when the network has one (from the first fold).
    pub classification: Option<ClassificationSpec>,
}

impl ModelFolder {
    /// Reads `dir`. `folds` selects fold names (`"0"`, `"all"`...) in the given order; `None`
    /// uses every exported fold, numerically sorted.
    pub fn open(dir: &Path, folds: Option<&[String]>) -> Result<ModelFolder> {
        if !dir.is_dir() {
            return Err(Error::new(ErrorKind::Io, format!("model folder {} does not exist", dir.display())));
        }
        ModelFolder::open_source(Source::Dir(dir.to_path_buf()), folds)
    }

    /// [`ModelFolder::open`] on a folder on disk or inside a bundle.
    pub fn open_source(source: Source, folds: Option<&[String]>) -> Result<ModelFolder> {
        let dir = source.path_of("");
        let dir = dir.as_path();
        let plans = read_json(&source, "plans.json")?;
        let dataset = read_json(&source, "dataset.json")?;
        let available = source.exported_folds()?;
        let chosen: Vec<String> = match folds {
            None => available.clone(),
            Some([]) => return Err(Error::invalid_argument("the fold list is empty")),
            Some(list) => {
                for name in list {
                    if !available.contains(name) {
                        return Err(Error::invalid_argument(format!(
                            "fold {name:?} is not in {} (exported folds: {available:?})",
                            dir.display()
                        )));
                    }
                }
                list.to_vec()
            }
        };
        if chosen.is_empty() {
            return Err(Error::invalid_model(format!(
                "{} has no exported fold (fold_N/{ONNX_FILE} with {EXPORT_METADATA_FILE}); export the checkpoints with tools/export_onnx.py",
                dir.display()
            )));
        }
        let folds = chosen
            .iter()
            .map(|name| {
                let metadata_name = format!("fold_{name}/{EXPORT_METADATA_FILE}");
                let metadata: ExportMetadata = serde_json::from_value(read_json(&source, &metadata_name)?)
                    .map_err(|e| Error::invalid_model(format!("{}: {e}", source.path_of(&metadata_name).display())))?;
                let onnx_name = format!("fold_{name}/{ONNX_FILE}");
                Ok(Fold { name: name.clone(), onnx_path: source.path_of(&onnx_name), onnx_name, metadata })
            })
            .collect::<Result<Vec<_>>>()?;
        let first = &folds[0].metadata;
        let plan = Plan::from_json(&plans, &dataset, &first.configuration)?;
        for fold in &folds {
            check_metadata(&fold.metadata, &plan, &fold.name, first)?;
        }
        let network_axes = first.inference_allowed_mirroring_axes.clone().unwrap_or_default();
        if let Some(bad) = network_axes.iter().find(|&&a| a >= plan.network_dims) {
            return Err(Error::invalid_model(format!(
                "fold_{}/{EXPORT_METADATA_FILE} inference_allowed_mirroring_axes contains axis {bad}; a {}-D network has axes 0..{}",
                folds[0].name,
                plan.network_dims,
                plan.network_dims - 1
            )));
        }
        let slice_axes = 3 - plan.network_dims;
        let mirroring_axes = network_axes.iter().map(|a| a + slice_axes).collect();
        Ok(ModelFolder {
            dir: dir.to_path_buf(),
            source,
            classification: first.classification.clone(),
            plan,
            folds,
            mirroring_axes,
        })
    }
}

fn read_json(source: &Source, name: &str) -> Result<Value> {
    let bytes = source.read(name)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid_model(format!("{} is not valid JSON: {e}", source.path_of(name).display())))
}

fn check_metadata(meta: &ExportMetadata, plan: &Plan, fold: &str, first: &ExportMetadata) -> Result<()> {
    let file = format!("fold_{fold}/{EXPORT_METADATA_FILE}");
    if meta.format != "nnunet-rt-export" || meta.format_version != 1 {
        return Err(Error::unsupported_model(format!(
            "{file}: format {:?} version {} (expected \"nnunet-rt-export\" version 1)",
            meta.format, meta.format_version
        )));
    }
    if meta.configuration != first.configuration || meta.outputs.len() != first.outputs.len() {
        return Err(Error::invalid_model(format!("{file}: configuration or outputs differ from the first fold's")));
    }
    let seg = meta
        .output(ROLE_SEGMENTATION)
        .ok_or_else(|| Error::invalid_model(format!("{file}: no output with role \"{ROLE_SEGMENTATION}\"")))?;
    let dim = |shape: &[Value], i: usize| shape.get(i).and_then(Value::as_u64).map(|d| d as usize);
    // (batch, channels, spatial...): a 2-D network's input has no slice axis.
    let expected_in = plan.network_input_shape();
    let found_in: Vec<Option<usize>> = (1..meta.input.shape.len()).map(|i| dim(&meta.input.shape, i)).collect();
    if found_in.len() != expected_in.len() || found_in.iter().zip(&expected_in).any(|(f, e)| *f != Some(*e)) {
        return Err(Error::invalid_model(format!(
            "{file}: input shape {:?} does not match the plans (channels {}, patch {:?})",
            meta.input.shape,
            plan.network_input_channels(),
            plan.patch_size
        )));
    }
    if dim(&seg.shape, 1) != Some(plan.num_outputs()) {
        let what = if plan.regions.is_some() { "regions" } else { "labels" };
        return Err(Error::invalid_model(format!(
            "{file}: segmentation output has shape {:?} but dataset.json has {} {what}",
            seg.shape,
            plan.num_outputs()
        )));
    }
    if let (Some(cls), Some(spec)) = (meta.output(ROLE_CLASSIFICATION), &meta.classification) {
        if dim(&cls.shape, 1) != Some(spec.class_names.len()) {
            return Err(Error::invalid_model(format!(
                "{file}: classification output has shape {:?} but {} class names",
                cls.shape,
                spec.class_names.len()
            )));
        }
        if let Some(bad) = spec.evidence_labels.iter().flatten().find(|&&l| l as usize >= plan.num_classes()) {
            return Err(Error::invalid_model(format!("{file}: evidence label {bad} is not a label of dataset.json")));
        }
    } else if meta.output(ROLE_CLASSIFICATION).is_some() != meta.classification.is_some() {
        return Err(Error::invalid_model(format!(
            "{file}: a classification output needs \"classification\" class names, and the reverse"
        )));
    }
    Ok(())
}
