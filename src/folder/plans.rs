//! What nnU-Net's `plans.json` and `dataset.json` say about inference, resolved for one
//! configuration and checked: everything the pipeline needs, nothing it does not.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Intensity normalisation of one input channel (nnU-Net's `normalization_schemes`).
#[derive(Debug, Clone, PartialEq)]
pub enum Normalization {
    /// `CTNormalization`: clip to the training foreground's 0.5/99.5 percentiles, subtract its
    /// mean, divide by its std — all as float32, the statistics converted once.
    Ct {
        /// `percentile_00_5` as float32.
        lower: f32,
        /// `percentile_99_5` as float32.
        upper: f32,
        /// `mean` as float32.
        mean: f32,
        /// `max(std, 1e-8)` taken in float64, then float32.
        std: f32,
    },
    /// `ZScoreNormalization`: the case's own mean and std, over the nonzero mask when
    /// `use_mask_for_norm` is set for the channel.
    ZScore {
        /// Restrict statistics and normalisation to the (hole-filled) nonzero mask.
        use_mask: bool,
    },
    /// `NoNormalization`: values are only converted to float32.
    NoNorm,
    /// `RescaleTo01Normalization`: `(x - min) / max(max_after_shift, 1e-8)`.
    RescaleTo01,
    /// `RGBTo01Normalization`: `x / 255`.
    RgbTo01,
}

/// One of nnU-Net's `resample_data_or_seg_to_shape` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResamplingSpec {
    /// Spline order in-plane or in 3-D: 3 for images, 1 for logits by default.
    pub order: usize,
    /// Order along the thick axis when resampling separately (0 = nearest).
    pub order_z: usize,
    /// `force_separate_z`: `None` decides from the spacing's anisotropy.
    pub force_separate_z: Option<bool>,
}

/// A value of the output label map and its name from `dataset.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Name in `dataset.json` (`background`, `pancreas`, ...; a region's name for region-based
    /// models).
    pub name: String,
    /// Value written in the output label map (= network output channel for softmax models; the
    /// region's `regions_class_order` entry for region-based ones).
    pub value: u32,
}

/// One region of a region-based model (`dataset.json` labels given as lists, e.g. BraTS' "whole
/// tumour" = [1, 2, 3]): one sigmoid output of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Name in `dataset.json`.
    pub name: String,
    /// The training labels the region unites.
    pub labels: Vec<u32>,
    /// Value written where the region is on (its `regions_class_order` entry); later regions
    /// overwrite earlier ones.
    pub value: u32,
}

/// Everything about a model's configuration that inference needs, in nnU-Net's axis order
/// (after `transpose_forward`) where a field is spatial.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Configuration name, e.g. `3d_fullres`.
    pub configuration: String,
    /// Input channel names from `dataset.json`, in channel order.
    pub channel_names: Vec<String>,
    /// Output labels, by value, background first; for softmax models the argmax index is the
    /// label value.
    pub labels: Vec<Label>,
    /// Region-based models: the network's sigmoid outputs, in output-channel order (`dataset.json`
    /// order); `None` for softmax models.
    pub regions: Option<Vec<Region>>,
    /// `transpose_forward`: spatial axis `i` of the network's array is input axis `transpose_forward[i]`.
    pub transpose_forward: [usize; 3],
    /// `transpose_backward`, the inverse permutation.
    pub transpose_backward: [usize; 3],
    /// 3 for a 3-D network; 2 for a `2d` configuration, whose network sees one slice (axis 0 of
    /// the transposed array) at a time.
    pub network_dims: usize,
    /// Network patch size (transposed order); `[1, Py, Px]` for a 2-D network.
    pub patch_size: [usize; 3],
    /// Target spacing in mm (transposed order). A 2-D configuration keeps each case's own slice
    /// spacing on axis 0, which is 0 here: use [`Plan::target_spacing`].
    pub spacing: [f64; 3],
    /// One normalisation per channel.
    pub normalization: Vec<Normalization>,
    /// Resampling of images during preprocessing.
    pub resample_data: ResamplingSpec,
    /// Resampling of logits back to the original grid at export.
    pub resample_probabilities: ResamplingSpec,
    /// Resampling of segmentations: a cascade's previous-stage labels during preprocessing.
    pub resample_seg: ResamplingSpec,
    /// A cascade stage (`3d_cascade_fullres`): the configuration whose segmentation it takes as
    /// extra input channels (`previous_stage`, e.g. `3d_lowres`).
    pub previous_stage: Option<String>,
    /// File ending of the training images, e.g. `.nii.gz`.
    pub file_ending: String,
}

impl Plan {
    /// Number of values of the output label map (background included).
    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }

    /// Number of network output channels: one per label (softmax), or one per region (sigmoid).
    pub fn num_outputs(&self) -> usize {
        self.regions.as_ref().map_or(self.labels.len(), Vec::len)
    }

    /// The caller's (x, y, z) order to nnU-Net's array order (z, y, x), permuted by
    /// `transpose_forward`: the one place the two axis conventions meet.
    pub fn to_network_axes<T: Copy>(&self, xyz: [T; 3]) -> [T; 3] {
        let zyx = [xyz[2], xyz[1], xyz[0]];
        std::array::from_fn(|i| zyx[self.transpose_forward[i]])
    }

    /// The inverse of [`Plan::to_network_axes`]: transposed array order back to (x, y, z).
    pub fn to_caller_axes<T: Copy>(&self, transposed: [T; 3]) -> [T; 3] {
        let zyx: [T; 3] = std::array::from_fn(|a| transposed[self.transpose_backward[a]]);
        [zyx[2], zyx[1], zyx[0]]
    }

    /// Channels the network takes: the image's, then for a cascade stage one per foreground
    /// label of the previous stage's segmentation (one-hot, as nnU-Net appends them).
    pub fn network_input_channels(&self) -> usize {
        let previous = if self.previous_stage.is_some() { self.foreground_labels().len() } else { 0 };
        self.channel_names.len() + previous
    }

    /// Label values other than background, ascending.
    pub fn foreground_labels(&self) -> Vec<u32> {
        self.labels.iter().map(|l| l.value).filter(|&v| v != 0).collect()
    }

    /// One input tile as the network takes it (without the batch axis): `[channels, Pz, Py, Px]`,
    /// or `[channels, Py, Px]` for a 2-D network.
    pub fn network_input_shape(&self) -> Vec<usize> {
        let spatial = &self.patch_size[3 - self.network_dims..];
        std::iter::once(self.network_input_channels()).chain(spatial.iter().copied()).collect()
    }

    /// The spacing a case at `case_spacing` (transposed order) is resampled to: the plan's, except
    /// that a 2-D configuration keeps the case's slice spacing (nnU-Net's preprocessor and export
    /// both prepend it).
    pub fn target_spacing(&self, case_spacing: [f64; 3]) -> [f64; 3] {
        if self.network_dims == 2 {
            [case_spacing[0], self.spacing[1], self.spacing[2]]
        } else {
            self.spacing
        }
    }

    /// Whether any channel needs the hole-filled nonzero mask (ZScore with `use_mask_for_norm`).
    pub fn needs_nonzero_mask(&self) -> bool {
        self.normalization.iter().any(|n| matches!(n, Normalization::ZScore { use_mask: true }))
    }

    /// Reads `plans.json` and `dataset.json` (as parsed JSON) for `configuration`.
    ///
    /// Refuses, naming the key and value, what this library does not implement: 2-D or cascaded
    /// configurations, resampling or normalisation functions other than nnU-Net's defaults,
    /// region-based labels, and readers that reorient.
    pub fn from_json(plans: &Value, dataset: &Value, configuration: &str) -> Result<Plan> {
        let plans = object(plans, "plans.json")?;
        let dataset = object(dataset, "dataset.json")?;
        let config = &resolve_configuration(plans, configuration)?;
        let at = |key: &str| format!("plans.json configurations.{configuration}.{key}");

        let previous_stage = match config.get("previous_stage") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) if !name.is_empty() && name != configuration => Some(name.clone()),
            Some(other) => {
                return Err(Error::invalid_model(format!(
                    "{} = {other} is not the name of another configuration",
                    at("previous_stage")
                )))
            }
        };
        let patch = usize_list(config.get("patch_size"), &at("patch_size"))?;
        let spacing = f64_list(config.get("spacing"), &at("spacing"))?;
        let network_dims = patch.len();
        if !matches!(network_dims, 2 | 3) {
            return Err(Error::invalid_model(format!("{} = {patch:?}: a network is 2-D or 3-D", at("patch_size"))));
        }
        if spacing.len() != network_dims || spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::invalid_model(format!(
                "{} = {spacing:?} is not {network_dims} positive numbers (one per axis of patch_size {patch:?})",
                at("spacing")
            )));
        }
        // A 2-D network tiles each slice of axis 0: a patch of one slice, and the slice spacing
        // is the case's own.
        let (patch_size, spacing) = match network_dims {
            2 => ([1, patch[0], patch[1]], [0.0, spacing[0], spacing[1]]),
            _ => ([patch[0], patch[1], patch[2]], [spacing[0], spacing[1], spacing[2]]),
        };
        if let Some(reader) = plans.get("image_reader_writer").and_then(Value::as_str) {
            if !matches!(reader, "SimpleITKIO" | "NibabelIO") {
                return Err(Error::unsupported_model(format!(
                    "plans.json image_reader_writer = {reader:?}: only SimpleITKIO and NibabelIO (no reorientation) are supported"
                )));
            }
        }
        let transpose_forward = permutation(plans.get("transpose_forward"), "plans.json transpose_forward")?;
        let transpose_backward = permutation(plans.get("transpose_backward"), "plans.json transpose_backward")?;
        for i in 0..3 {
            if transpose_backward[transpose_forward[i]] != i {
                return Err(Error::invalid_model(format!(
                    "plans.json transpose_backward {transpose_backward:?} is not the inverse of transpose_forward {transpose_forward:?}"
                )));
            }
        }

        let channel_names = channel_names(dataset)?;
        let (labels, regions) = labels(dataset)?;
        let normalization = normalization(plans, config, &at, &channel_names)?;
        let resample_data = resampling(config, "resampling_fn_data", &at)?;
        let resample_probabilities = resampling(config, "resampling_fn_probabilities", &at)?;
        let resample_seg = resampling(config, "resampling_fn_seg", &at)?;
        let file_ending = dataset.get("file_ending").and_then(Value::as_str).unwrap_or(".nii.gz").to_string();

        Ok(Plan {
            configuration: configuration.to_string(),
            channel_names,
            labels,
            regions,
            transpose_forward,
            transpose_backward,
            network_dims,
            patch_size,
            spacing,
            normalization,
            resample_data,
            resample_probabilities,
            resample_seg,
            previous_stage,
            file_ending,
        })
    }
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| Error::invalid_model(format!("{what} is not a JSON object")))
}

/// `configurations[name]` with `inherits_from` resolved: the parent's keys, overridden by the child's.
fn resolve_configuration(plans: &Map<String, Value>, name: &str) -> Result<Map<String, Value>> {
    let configs = plans
        .get("configurations")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid_model("plans.json has no \"configurations\" object"))?;
    let mut chain = vec![name.to_string()];
    let mut current = name.to_string();
    loop {
        let config = configs.get(&current).and_then(Value::as_object).ok_or_else(|| {
            let known: Vec<&String> = configs.keys().collect();
            Error::invalid_model(format!("plans.json has no configuration {current:?} (it has {known:?})"))
        })?;
        match config.get("inherits_from").and_then(Value::as_str) {
            Some(parent) if chain.iter().any(|c| c == parent) => {
                return Err(Error::invalid_model(format!(
                    "plans.json configurations: inherits_from forms a cycle through {parent:?}"
                )))
            }
            Some(parent) => {
                chain.push(parent.to_string());
                current = parent.to_string();
            }
            None => break,
        }
    }
    let mut resolved = Map::new();
    for link in chain.iter().rev() {
        for (k, v) in configs[link].as_object().expect("checked above") {
            resolved.insert(k.clone(), v.clone());
        }
    }
    resolved.remove("inherits_from");
    Ok(resolved)
}

fn usize_list(value: Option<&Value>, key: &str) -> Result<Vec<usize>> {
    let list = value
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_model(format!("{key} is missing or not a list")))?;
    list.iter().map(|v| v.as_u64().filter(|&n| n > 0).map(|n| n as usize)).collect::<Option<Vec<_>>>().ok_or_else(
        || Error::invalid_model(format!("{key} = {} is not a list of positive integers", Value::Array(list.clone()))),
    )
}

fn f64_list(value: Option<&Value>, key: &str) -> Result<Vec<f64>> {
    let list = value
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_model(format!("{key} is missing or not a list")))?;
    list.iter()
        .map(Value::as_f64)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::invalid_model(format!("{key} is not a list of numbers")))
}

fn permutation(value: Option<&Value>, key: &str) -> Result<[usize; 3]> {
    let list = match value {
        None => vec![0, 1, 2],
        Some(v) => v
            .as_array()
            .and_then(|l| l.iter().map(|n| n.as_u64().map(|n| n as usize)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| Error::invalid_model(format!("{key} = {v} is not a list of axis indices")))?,
    };
    let mut sorted = list.clone();
    sorted.sort_unstable();
    if sorted != [0, 1, 2] {
        return Err(Error::invalid_model(format!("{key} = {list:?} is not a permutation of [0, 1, 2]")));
    }
    Ok([list[0], list[1], list[2]])
}

fn channel_names(dataset: &Map<String, Value>) -> Result<Vec<String>> {
    let names = dataset
        .get("channel_names")
        .or_else(|| dataset.get("modality"))
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid_model("dataset.json has no \"channel_names\" object"))?;
    let mut indexed = names
        .iter()
        .map(|(k, v)| {
            let index = k.parse::<usize>().map_err(|_| {
                Error::invalid_model(format!("dataset.json channel_names key {k:?} is not a channel index"))
            })?;
            Ok((index, v.as_str().unwrap_or_default().to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    indexed.sort();
    if indexed.iter().enumerate().any(|(i, (index, _))| i != *index) || indexed.is_empty() {
        return Err(Error::invalid_model(format!(
            "dataset.json channel_names keys {:?} are not 0..N-1",
            indexed.iter().map(|(i, _)| i).collect::<Vec<_>>()
        )));
    }
    Ok(indexed.into_iter().map(|(_, name)| name).collect())
}

/// The output labels and, for region-based models, the regions, as nnU-Net's `LabelManager` reads
/// `dataset.json`: region-based when any label is a list of more than one value.
fn labels(dataset: &Map<String, Value>) -> Result<(Vec<Label>, Option<Vec<Region>>)> {
    let labels = dataset
        .get("labels")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid_model("dataset.json has no \"labels\" object"))?;
    let mut entries = Vec::new();
    for (name, value) in labels {
        let values = match value {
            Value::Array(list) => list.iter().map(Value::as_u64).collect::<Option<Vec<_>>>(),
            single => single.as_u64().map(|v| vec![v]),
        }
        .filter(|v| !v.is_empty() && v.iter().all(|&v| v <= u16::MAX as u64))
        .ok_or_else(|| {
            Error::invalid_model(format!("dataset.json labels.{name} = {value} is not a label value or a list of them"))
        })?;
        if name == "ignore" {
            continue;
        }
        entries.push((name.clone(), values.into_iter().map(|v| v as u32).collect::<Vec<u32>>(), value.is_array()));
    }
    match entries.iter().find(|(name, _, _)| name == "background") {
        Some((_, values, is_list)) if !*is_list && values == &[0] => {}
        _ => return Err(Error::invalid_model("dataset.json labels must contain background = 0")),
    }
    let has_regions = entries.iter().any(|(_, values, _)| values.len() > 1);
    let (out, regions) = if has_regions {
        let order = dataset.get("regions_class_order").and_then(Value::as_array).ok_or_else(|| {
            Error::invalid_model("dataset.json has region-based labels but no \"regions_class_order\" list")
        })?;
        let foreground: Vec<_> = entries.iter().filter(|(_, values, _)| values.iter().any(|&v| v != 0)).collect();
        if order.len() != foreground.len() {
            return Err(Error::invalid_model(format!(
                "dataset.json regions_class_order has {} entries but there are {} regions",
                order.len(),
                foreground.len()
            )));
        }
        let regions = foreground
            .iter()
            .zip(order)
            .map(|((name, values, _), value)| {
                let value = value.as_u64().filter(|&v| v > 0 && v <= u16::MAX as u64).ok_or_else(|| {
                    Error::invalid_model(format!("dataset.json regions_class_order entry {value} is not a label value"))
                })?;
                let mut labels = values.clone();
                labels.sort_unstable();
                labels.dedup();
                Ok(Region { name: name.clone(), labels, value: value as u32 })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![Label { name: "background".to_string(), value: 0 }];
        out.extend(regions.iter().map(|r| Label { name: r.name.clone(), value: r.value }));
        (out, Some(regions))
    } else {
        let out = entries.into_iter().map(|(name, values, _)| Label { name, value: values[0] }).collect();
        (out, None)
    };
    let mut out: Vec<Label> = out;
    out.sort_by_key(|l| l.value);
    if out.iter().enumerate().any(|(i, l)| l.value as usize != i) {
        return Err(Error::invalid_model(format!(
            "dataset.json label values {:?} are not consecutive 0..N-1",
            out.iter().map(|l| l.value).collect::<Vec<_>>()
        )));
    }
    Ok((out, regions))
}

fn normalization(
    plans: &Map<String, Value>,
    config: &Map<String, Value>,
    at: &dyn Fn(&str) -> String,
    channel_names: &[String],
) -> Result<Vec<Normalization>> {
    let schemes = config
        .get("normalization_schemes")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_model(format!("{} is missing", at("normalization_schemes"))))?;
    if schemes.len() != channel_names.len() {
        return Err(Error::invalid_model(format!(
            "{} has {} entries but dataset.json declares {} channel(s)",
            at("normalization_schemes"),
            schemes.len(),
            channel_names.len()
        )));
    }
    let masks = config.get("use_mask_for_norm").and_then(Value::as_array);
    let properties = plans
        .get("foreground_intensity_properties_per_channel")
        .or_else(|| plans.get("foreground_intensity_properties_by_modality"))
        .and_then(Value::as_object);
    schemes
        .iter()
        .enumerate()
        .map(|(c, scheme)| {
            let name = scheme.as_str().unwrap_or_default();
            let use_mask = masks.and_then(|m| m.get(c)).and_then(Value::as_bool).unwrap_or(false);
            Ok(match name {
                "CTNormalization" => {
                    let key = "plans.json foreground_intensity_properties_per_channel";
                    let props = properties
                        .and_then(|p| p.get(&c.to_string()))
                        .and_then(Value::as_object)
                        .ok_or_else(|| Error::invalid_model(format!("{key}.\"{c}\" is missing (needed by CTNormalization)")))?;
                    let get = |k: &str| {
                        props.get(k).and_then(Value::as_f64).ok_or_else(|| {
                            Error::invalid_model(format!("{key}.\"{c}\".{k} is missing (needed by CTNormalization)"))
                        })
                    };
                    Normalization::Ct {
                        lower: get("percentile_00_5")? as f32,
                        upper: get("percentile_99_5")? as f32,
                        mean: get("mean")? as f32,
                        std: get("std")?.max(1e-8) as f32,
                    }
                }
                "ZScoreNormalization" => Normalization::ZScore { use_mask },
                "NoNormalization" => Normalization::NoNorm,
                "RescaleTo01Normalization" => Normalization::RescaleTo01,
                "RGBTo01Normalization" => Normalization::RgbTo01,
                other => {
                    return Err(Error::unsupported_model(format!(
                        "{}[{c}] = {other:?}: unknown normalisation (supported: CTNormalization, ZScoreNormalization, NoNormalization, RescaleTo01Normalization, RGBTo01Normalization)",
                        at("normalization_schemes")
                    )))
                }
            })
        })
        .collect()
}

fn resampling(config: &Map<String, Value>, key: &str, at: &dyn Fn(&str) -> String) -> Result<ResamplingSpec> {
    let name = config.get(key).and_then(Value::as_str).unwrap_or("resample_data_or_seg_to_shape");
    if name != "resample_data_or_seg_to_shape" {
        return Err(Error::unsupported_model(format!(
            "{} = {name:?}: only resample_data_or_seg_to_shape is supported",
            at(key)
        )));
    }
    let kwargs_key = format!("{key}_kwargs");
    let kwargs = config.get(&kwargs_key).and_then(Value::as_object);
    let default_order = if key == "resampling_fn_data" { 3 } else { 1 };
    let int = |k: &str, default: usize| -> Result<usize> {
        match kwargs.and_then(|m| m.get(k)) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_u64().filter(|&o| o <= 5).map(|o| o as usize).ok_or_else(|| {
                Error::invalid_model(format!("{}.{k} = {v} is not a spline order 0..5", at(&kwargs_key)))
            }),
        }
    };
    let order = int("order", default_order)?;
    let order_z = int("order_z", 0)?;
    if !matches!(order, 0 | 1 | 3) || order_z != 0 {
        return Err(Error::unsupported_model(format!(
            "{} order = {order}, order_z = {order_z}: only order 0, 1 or 3 with order_z 0 are supported",
            at(&kwargs_key)
        )));
    }
    let force_separate_z = match kwargs.and_then(|m| m.get("force_separate_z")) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => {
            return Err(Error::invalid_model(format!(
                "{}.force_separate_z = {v} is not a boolean or null",
                at(&kwargs_key)
            )))
        }
    };
    Ok(ResamplingSpec { order, order_z, force_separate_z })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    fn plans() -> Value {
        json!({
            "transpose_forward": [0, 1, 2],
            "transpose_backward": [0, 1, 2],
            "image_reader_writer": "SimpleITKIO",
            "foreground_intensity_properties_per_channel": {
                "0": {"mean": 74.89175415039062, "std": 44.09819793701172,
                      "percentile_00_5": -55.99610900878906, "percentile_99_5": 179.97802734375}
            },
            "configurations": {
                "3d_base": {
                    "patch_size": [64, 128, 192],
                    "spacing": [2.0, 0.73046875, 0.73046875],
                    "normalization_schemes": ["CTNormalization"],
                    "use_mask_for_norm": [false],
                    "resampling_fn_data": "resample_data_or_seg_to_shape",
                    "resampling_fn_data_kwargs": {"is_seg": false, "order": 3, "order_z": 0, "force_separate_z": null},
                    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                    "resampling_fn_probabilities_kwargs": {"is_seg": false, "order": 1, "order_z": 0, "force_separate_z": null}
                },
                "3d_fullres": {"inherits_from": "3d_base", "patch_size": [32, 64, 96]},
                "2d": {"patch_size": [128, 128], "spacing": [0.7, 0.7], "normalization_schemes": ["CTNormalization"]}
            }
        })
    }

    fn dataset() -> Value {
        json!({"channel_names": {"0": "CT"}, "labels": {"background": 0, "pancreas": 1, "lesion": 2}, "file_ending": ".nii.gz"})
    }

    #[test]
    fn resolves_inheritance_and_reads_ct_statistics() {
        let plan = Plan::from_json(&plans(), &dataset(), "3d_fullres").unwrap();
        assert_eq!(plan.patch_size, [32, 64, 96], "the child's key wins");
        assert_eq!(plan.spacing, [2.0, 0.73046875, 0.73046875], "inherited from the parent");
        assert_eq!(plan.num_classes(), 3);
        assert_eq!(plan.resample_probabilities.order, 1);
        match plan.normalization[0] {
            Normalization::Ct { lower, upper, mean, std } => {
                assert_eq!(
                    (lower, upper, mean, std),
                    (-55.99610900878906f32, 179.97802734375f32, 74.89175415039062f32, 44.09819793701172f32)
                );
            }
            ref other => panic!("expected CT normalisation, got {other:?}"),
        }
    }

    #[test]
    fn a_2d_configuration_tiles_slices_at_the_case_slice_spacing() {
        let plan = Plan::from_json(&plans(), &dataset(), "2d").unwrap();
        assert_eq!(plan.network_dims, 2);
        assert_eq!(plan.patch_size, [1, 128, 128]);
        assert_eq!(plan.target_spacing([3.0, 0.8, 0.9]), [3.0, 0.7, 0.7]);
        let fullres = Plan::from_json(&plans(), &dataset(), "3d_fullres").unwrap();
        assert_eq!(fullres.target_spacing([3.0, 0.8, 0.9]), fullres.spacing);

        let mut p = plans();
        p["configurations"]["2d"]["spacing"] = json!([0.7, 0.7, 0.7]);
        let err = Plan::from_json(&p, &dataset(), "2d").unwrap_err();
        assert!(err.message().contains("configurations.2d.spacing"), "{err}");
        p["configurations"]["2d"]["patch_size"] = json!([128]);
        let err = Plan::from_json(&p, &dataset(), "2d").unwrap_err();
        assert!(err.message().contains("configurations.2d.patch_size"), "{err}");
    }

    #[test]
    fn axis_conversions_are_inverse_and_follow_transpose_forward() {
        let mut p = plans();
        p["transpose_forward"] = json!([2, 0, 1]);
        p["transpose_backward"] = json!([1, 2, 0]);
        let plan = Plan::from_json(&p, &dataset(), "3d_fullres").unwrap();
        // (x, y, z) -> (z, y, x) -> transposed [x, z, y]
        assert_eq!(plan.to_network_axes(['x', 'y', 'z']), ['x', 'z', 'y']);
        assert_eq!(plan.to_caller_axes(plan.to_network_axes([1, 2, 3])), [1, 2, 3]);
    }

    #[test]
    fn region_based_labels_follow_regions_class_order() {
        let mut d = dataset();
        d["labels"] = json!({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3});
        d["regions_class_order"] = json!([1, 2, 3]);
        let plan = Plan::from_json(&plans(), &d, "3d_fullres").unwrap();
        let regions = plan.regions.as_ref().unwrap();
        assert_eq!(plan.num_outputs(), 3);
        assert_eq!(plan.num_classes(), 4);
        assert_eq!(regions[0], Region { name: "whole".into(), labels: vec![1, 2, 3], value: 1 });
        assert_eq!(regions[2].labels, [3]);
        assert_eq!(plan.labels[2], Label { name: "core".into(), value: 2 });
        d["regions_class_order"] = json!([1, 2]);
        let err = Plan::from_json(&plans(), &d, "3d_fullres").unwrap_err();
        assert!(err.message().contains("3 regions"), "{err}");
        let plain = Plan::from_json(&plans(), &dataset(), "3d_fullres").unwrap();
        assert_eq!((plain.regions.is_none(), plain.num_outputs()), (true, 3));
    }

    #[test]
    fn refuses_what_is_not_implemented_naming_the_key() {
        let mut p = plans();
        p["configurations"]["3d_fullres"]["resampling_fn_data"] = json!("resample_torch_fornnunet");
        let err = Plan::from_json(&p, &dataset(), "3d_fullres").unwrap_err();
        assert!(err.message().contains("resampling_fn_data = \"resample_torch_fornnunet\""), "{err}");

        let mut p = plans();
        p["configurations"]["3d_fullres"]["normalization_schemes"] = json!(["MyNorm"]);
        let err = Plan::from_json(&p, &dataset(), "3d_fullres").unwrap_err();
        assert!(err.message().contains("MyNorm"), "{err}");

        let mut p = plans();
        p["configurations"]["3d_fullres"]["previous_stage"] = json!("3d_lowres");
        let cascade = Plan::from_json(&p, &dataset(), "3d_fullres").unwrap();
        assert_eq!(cascade.previous_stage.as_deref(), Some("3d_lowres"));
        assert_eq!(cascade.network_input_channels(), 3, "CT + one-hot of labels 1 and 2");
        p["configurations"]["3d_fullres"]["previous_stage"] = json!(7);
        assert_eq!(Plan::from_json(&p, &dataset(), "3d_fullres").unwrap_err().kind(), ErrorKind::InvalidModel);

        let mut d = dataset();
        d["labels"] = json!({"background": 0, "whole": [1, 2], "core": 2});
        let err = Plan::from_json(&plans(), &d, "3d_fullres").unwrap_err();
        assert!(err.message().contains("regions_class_order"), "{err}");
    }

    #[test]
    fn missing_keys_are_named() {
        let mut p = plans();
        p["foreground_intensity_properties_per_channel"]["0"].as_object_mut().unwrap().remove("std");
        let err = Plan::from_json(&p, &dataset(), "3d_fullres").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidModel);
        assert!(err.message().contains("\"0\".std"), "{err}");
        let err = Plan::from_json(&plans(), &dataset(), "3d_lowres").unwrap_err();
        assert!(err.message().contains("3d_lowres"), "{err}");
        let mut p = plans();
        p["configurations"]["3d_base"]["inherits_from"] = json!("3d_fullres");
        assert!(Plan::from_json(&p, &dataset(), "3d_fullres").unwrap_err().message().contains("cycle"));
    }

    #[test]
    fn ignore_label_is_not_an_output() {
        let mut d = dataset();
        d["labels"]["ignore"] = json!(3);
        assert_eq!(Plan::from_json(&plans(), &d, "3d_fullres").unwrap().num_classes(), 3);
    }
}
