//! nnU-Net's postprocessing: the steps a results folder's `postprocessing.json` names, applied to
//! a label map.
//!
//! `nnUNetv2_determine_postprocessing` tries "keep only the largest connected component" on all
//! foreground labels at once, then on each label (or region) in `dataset.json` order, keeps the
//! steps that improved Dice, and writes them to `postprocessing.pkl` plus a JSON copy,
//! `postprocessing.json`. This module reads the JSON copy (the pickle is never read) and applies
//! the steps exactly as `apply_postprocessing` does with
//! `remove_all_but_largest_component_from_segmentation` (nnunetv2 2.8.1, acvl-utils 0.2.6):
//!
//! - a step's mask is the union of the voxels whose label is one of the step's labels. The JSON
//!   spells a step's `labels_or_regions` as one integer (a label, or a one-label region), a list of
//!   integers (several labels, or one region) or a list mixing integers and lists (several labels
//!   and regions). All spellings mean the same thing: a region's mask is "label in region", so the
//!   union is over every integer mentioned, at either level.
//! - the mask's connected components use full connectivity (26 neighbours in 3D; scikit-image
//!   `label` with `connectivity=None`), and every component whose size equals the maximum is kept,
//!   so a tie keeps all of the tied components;
//! - mask voxels outside the kept components become the background label (`background_label`,
//!   0 unless the kwargs say otherwise); an empty mask changes nothing;
//! - steps run in file order, each on the previous step's output.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::export::Labels;

/// The function name `postprocessing.json` uses for "keep the largest component", the only
/// postprocessing nnU-Net's `determine_postprocessing` ever chooses.
pub const KEEP_LARGEST_COMPONENT_FN: &str = "remove_all_but_largest_component_from_segmentation";

/// The name nnU-Net gives the file in a results folder, used in messages when no path is known.
const FILE_NAME: &str = "postprocessing.json";

/// The ordered postprocessing steps of one model, read from its `postprocessing.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Postprocessing {
    /// Where the steps came from (a path, or `postprocessing.json`), for messages.
    #[serde(skip)]
    source: String,
    steps: Vec<Step>,
}

/// One postprocessing step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// `remove_all_but_largest_component_from_segmentation`: among the voxels whose label is in
    /// `labels`, keep the largest connected component(s) and set the rest to `background`.
    KeepLargestComponent {
        /// Label values whose union forms the mask, ascending and without repeats (may be empty).
        labels: Vec<u32>,
        /// Label given to the removed voxels (`background_label`, 0 by default).
        background: u32,
    },
}

/// What one step did to one label map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StepReport {
    /// Connected components of the step's mask.
    pub components: usize,
    /// Components kept (more than one when several share the largest size; 0 for an empty mask).
    pub kept_components: usize,
    /// Voxels of the mask that were kept.
    pub kept_voxels: u64,
    /// Voxels of the mask that were set to the background label.
    pub removed_voxels: u64,
}

impl Postprocessing {
    /// Steps from the parsed content of a `postprocessing.json`.
    ///
    /// Only `postprocessing_fns` and `postprocessing_kwargs` are read (the metric sections are
    /// ignored). Fails with [`ErrorKind::UnsupportedModel`] on a function other than
    /// [`KEEP_LARGEST_COMPONENT_FN`], and with [`ErrorKind::InvalidModel`] on a missing key, lists
    /// of different lengths, an unknown keyword argument or a label that is not a non-negative
    /// integer.
    pub fn from_json(value: &Value) -> Result<Postprocessing> {
        Self::parse(value, FILE_NAME)
    }

    /// Steps from the text of a `postprocessing.json`; errors as [`Postprocessing::from_json`].
    pub fn from_json_text(text: &str) -> Result<Postprocessing> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_model(format!("{FILE_NAME} is not valid JSON: {e}")))?;
        Self::from_json(&value)
    }

    /// Steps from a `postprocessing.json` file; messages name the file. An unreadable file is an
    /// [`ErrorKind::InvalidModel`] error like any other broken model file.
    pub fn from_file(path: &Path) -> Result<Postprocessing> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid_model(format!("cannot read {source}: {e}")).with_source(e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid_model(format!("{source} is not valid JSON: {e}")))?;
        Self::parse(&value, &source)
    }

    /// No postprocessing: what a model without `postprocessing.json` gets.
    pub fn none() -> Postprocessing {
        Postprocessing { source: FILE_NAME.to_string(), steps: Vec::new() }
    }

    /// The steps, in the order they run.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// True when there is no step (nnU-Net writes empty lists when no step improved Dice).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Checks that every label a step names, and every background label, is a label of a model
    /// with `num_classes` labels (`0..num_classes`). nnU-Net itself would run such a step and find
    /// nothing to do; here it means the file belongs to another model, an
    /// [`ErrorKind::InvalidModel`] error naming the file, the step and the value.
    pub fn check_labels(&self, num_classes: usize) -> Result<()> {
        for (i, step) in self.steps.iter().enumerate() {
            let Step::KeepLargestComponent { labels, background } = step;
            let outside = |value: u32| value as usize >= num_classes;
            let complaint = if let Some(bad) = labels.iter().copied().find(|&l| outside(l)) {
                Some(("labels_or_regions", bad))
            } else if outside(*background) {
                Some(("background_label", *background))
            } else {
                None
            };
            if let Some((key, value)) = complaint {
                return Err(Error::invalid_model(format!(
                    "{}: postprocessing_kwargs[{i}].{key} names label {value}, but the model's labels are 0..={}",
                    self.source,
                    num_classes.saturating_sub(1)
                )));
            }
        }
        Ok(())
    }

    /// Runs every step on `labels`, a label map of `dims` voxels (x fastest, as in
    /// [`crate::Prediction`]), in place, and reports what each step did.
    ///
    /// Fails with [`ErrorKind::ShapeMismatch`] when `dims` does not match the map's length, and
    /// with [`ErrorKind::InvalidArgument`] when a background label does not fit a `u8` map or the
    /// volume has 2³² voxels or more. The map is unchanged when an error is returned.
    pub fn apply(&self, labels: &mut Labels, dims: [usize; 3]) -> Result<Vec<StepReport>> {
        match labels {
            Labels::U8(values) => self.apply_to(values, dims),
            Labels::U16(values) => self.apply_to(values, dims),
        }
    }

    fn apply_to<T: LabelValue>(&self, values: &mut [T], dims: [usize; 3]) -> Result<Vec<StepReport>> {
        check_dims(values.len(), dims)?;
        let backgrounds = self
            .steps
            .iter()
            .map(|step| {
                let Step::KeepLargestComponent { background, .. } = step;
                T::from_u32(*background).ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "{}: background label {background} does not fit the label map's element type",
                        self.source
                    ))
                })
            })
            .collect::<Result<Vec<T>>>()?;
        Ok(self
            .steps
            .iter()
            .zip(backgrounds)
            .map(|(step, background)| {
                let Step::KeepLargestComponent { labels, .. } = step;
                keep_largest_component(values, dims, labels, background)
            })
            .collect())
    }

    fn parse(value: &Value, source: &str) -> Result<Postprocessing> {
        let bad = |message: String| Error::invalid_model(format!("{source}: {message}"));
        let root = value.as_object().ok_or_else(|| bad("is not a JSON object".to_string()))?;
        let list = |key: &str| -> Result<&Vec<Value>> {
            root.get(key)
                .ok_or_else(|| bad(format!("key {key} is missing")))?
                .as_array()
                .ok_or_else(|| bad(format!("{key} is not a list: {}", root[key])))
        };
        let fns = list("postprocessing_fns")?;
        let kwargs = list("postprocessing_kwargs")?;
        if fns.len() != kwargs.len() {
            return Err(bad(format!(
                "postprocessing_fns has {} entries but postprocessing_kwargs has {}",
                fns.len(),
                kwargs.len()
            )));
        }
        let steps = fns
            .iter()
            .zip(kwargs)
            .enumerate()
            .map(|(i, (name, kwargs))| {
                if name.as_str() != Some(KEEP_LARGEST_COMPONENT_FN) {
                    return Err(Error::new(
                        ErrorKind::UnsupportedModel,
                        format!(
                            "{source}: postprocessing_fns[{i}] is {name}; only {KEEP_LARGEST_COMPONENT_FN} is supported"
                        ),
                    ));
                }
                let kwargs = kwargs
                    .as_object()
                    .ok_or_else(|| bad(format!("postprocessing_kwargs[{i}] is not an object: {kwargs}")))?;
                parse_keep_largest(kwargs).map_err(|e| bad(format!("postprocessing_kwargs[{i}].{e}")))
            })
            .collect::<Result<Vec<Step>>>()?;
        Ok(Postprocessing { source: source.to_string(), steps })
    }
}

/// The keyword arguments of one `remove_all_but_largest_component_from_segmentation` step; the
/// error is the message after `postprocessing_kwargs[i].`.
fn parse_keep_largest(kwargs: &Map<String, Value>) -> std::result::Result<Step, String> {
    if let Some(unknown) = kwargs.keys().find(|k| !matches!(k.as_str(), "labels_or_regions" | "background_label")) {
        return Err(format!("{unknown} is not an argument of {KEEP_LARGEST_COMPONENT_FN}"));
    }
    let spec = kwargs.get("labels_or_regions").ok_or("labels_or_regions is missing")?;
    let mut labels = Vec::new();
    collect_labels(spec, 0, &mut labels).map_err(|why| {
        format!(
            "labels_or_regions is {spec}: {why} (expected a label, a list of labels, or a list of labels and regions)"
        )
    })?;
    labels.sort_unstable();
    labels.dedup();
    let background = match kwargs.get("background_label") {
        None => 0,
        Some(value) => {
            label_value(value).ok_or_else(|| format!("background_label is {value}, not a non-negative integer"))?
        }
    };
    Ok(Step::KeepLargestComponent { labels, background })
}

/// Adds every label of `spec` to `labels`. Depth 0 is the kwarg itself (a label, or a list of
/// labels and regions), depth 1 a list's entry (a label or a region), depth 2 a region's label.
/// nnU-Net never writes deeper lists, and numpy would not read them as regions either.
fn collect_labels(spec: &Value, depth: usize, labels: &mut Vec<u32>) -> std::result::Result<(), String> {
    match spec {
        Value::Array(items) if depth < 2 => items.iter().try_for_each(|item| collect_labels(item, depth + 1, labels)),
        Value::Array(_) => Err("lists nest deeper than regions".to_string()),
        _ => {
            labels.push(label_value(spec).ok_or_else(|| format!("{spec} is not a non-negative integer"))?);
            Ok(())
        }
    }
}

fn label_value(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|v| u32::try_from(v).ok())
}

fn check_dims(len: usize, dims: [usize; 3]) -> Result<()> {
    if dims.iter().product::<usize>() != len {
        return Err(Error::shape_mismatch(format!("a label map of {len} voxels does not have dims {dims:?}")));
    }
    Ok(())
}

/// Label map element types the steps work on.
trait LabelValue: Copy + PartialEq {
    fn to_u32(self) -> u32;
    fn from_u32(value: u32) -> Option<Self>;
}

impl LabelValue for u8 {
    fn to_u32(self) -> u32 {
        self as u32
    }
    fn from_u32(value: u32) -> Option<Self> {
        u8::try_from(value).ok()
    }
}

impl LabelValue for u16 {
    fn to_u32(self) -> u32 {
        self as u32
    }
    fn from_u32(value: u32) -> Option<Self> {
        u16::try_from(value).ok()
    }
}

/// One step: the union mask of `labels`, its components, and every voxel of a component smaller
/// than the largest set to `background`.
fn keep_largest_component<T: LabelValue>(
    values: &mut [T],
    dims: [usize; 3],
    labels: &[u32],
    background: T,
) -> StepReport {
    let mut in_step = vec![false; labels.last().map_or(0, |&max| max as usize + 1)];
    for &label in labels {
        in_step[label as usize] = true;
    }
    let mask: Vec<bool> = values.iter().map(|v| in_step.get(v.to_u32() as usize).copied().unwrap_or(false)).collect();
    let components = Components::label(&mask, dims).expect("dims were checked before the first step");
    let largest = components.sizes.iter().copied().max().unwrap_or(0);
    let mut report = StepReport {
        components: components.count(),
        kept_components: components.sizes.iter().filter(|&&size| size == largest).count(),
        kept_voxels: 0,
        removed_voxels: 0,
    };
    for (value, &id) in values.iter_mut().zip(&components.ids) {
        if id == 0 {
            continue;
        }
        if components.sizes[id as usize - 1] == largest {
            report.kept_voxels += 1;
        } else {
            *value = background;
            report.removed_voxels += 1;
        }
    }
    report
}

/// Connected components of a binary mask under full connectivity: two mask voxels touch when
/// they differ by at most one in every coordinate (26 neighbours in 3D, 8 within a slice of a
/// one-voxel-thick volume), as scikit-image's `label(mask, connectivity=mask.ndim)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components {
    ids: Vec<u32>,
    sizes: Vec<u64>,
}

impl Components {
    /// Labels the components of `mask`, a volume of `dims` voxels (x fastest; the result does not
    /// depend on the axis order). Components are numbered from 1 in the order their first voxel
    /// appears in memory, which for a C-order (z, y, x) array is scikit-image's numbering.
    ///
    /// Iterative flood fill with an explicit stack: memory is one `u32` per voxel plus at most one
    /// per mask voxel. Fails with [`ErrorKind::ShapeMismatch`] when `dims` does not match the
    /// mask's length and with [`ErrorKind::InvalidArgument`] for 2³² voxels or more.
    pub fn label(mask: &[bool], dims: [usize; 3]) -> Result<Components> {
        check_dims(mask.len(), dims)?;
        if u32::try_from(mask.len()).is_err() {
            return Err(Error::invalid_argument(format!(
                "a volume of {} voxels is too large for connected components (at most {})",
                mask.len(),
                u32::MAX
            )));
        }
        let [nx, ny, nz] = dims;
        let mut ids = vec![0u32; mask.len()];
        let mut sizes = Vec::new();
        let mut stack: Vec<u32> = Vec::new();
        for seed in 0..mask.len() {
            if !mask[seed] || ids[seed] != 0 {
                continue;
            }
            let id = sizes.len() as u32 + 1;
            ids[seed] = id;
            stack.push(seed as u32);
            let mut size = 0u64;
            while let Some(at) = stack.pop() {
                size += 1;
                let at = at as usize;
                let (x, y, z) = (at % nx, (at / nx) % ny, at / (nx * ny));
                for zz in z.saturating_sub(1)..=(z + 1).min(nz - 1) {
                    for yy in y.saturating_sub(1)..=(y + 1).min(ny - 1) {
                        let row = nx * (yy + ny * zz);
                        for xx in x.saturating_sub(1)..=(x + 1).min(nx - 1) {
                            let next = row + xx;
                            if mask[next] && ids[next] == 0 {
                                ids[next] = id;
                                stack.push(next as u32);
                            }
                        }
                    }
                }
            }
            sizes.push(size);
        }
        Ok(Components { ids, sizes })
    }

    /// Component of each voxel: 0 outside the mask, else 1..=[`Components::count`].
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Voxel count of each component; component `id` is at index `id - 1`.
    pub fn sizes(&self) -> &[u64] {
        &self.sizes
    }

    /// Number of components.
    pub fn count(&self) -> usize {
        self.sizes.len()
    }
}

/// `{1, 2}` for several labels, `1` for one, `{}` for none.
struct LabelList<'a>(&'a [u32]);

impl fmt::Display for LabelList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [one] = self.0 {
            return write!(f, "{one}");
        }
        let joined: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(f, "{{{}}}", joined.join(", "))
    }
}

impl fmt::Display for Step {
    /// E.g. `keep the largest component of {1, 2}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Step::KeepLargestComponent { labels, background } = self;
        write!(f, "keep the largest component of {}", LabelList(labels))?;
        if *background != 0 {
            write!(f, " (others become {background})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Postprocessing {
    /// One line: `none`, or e.g. `keep the largest component of {1, 2}, then of 1, then of 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((first, rest)) = self.steps.split_first() else {
            return f.write_str("none");
        };
        write!(f, "{first}")?;
        for step in rest {
            let Step::KeepLargestComponent { labels, background } = step;
            write!(f, ", then of {}", LabelList(labels))?;
            if *background != 0 {
                write!(f, " (others become {background})")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A u8 map of `dims` (x, y, z) with `label` at each listed (x, y, z).
    fn map(dims: [usize; 3], voxels: &[([usize; 3], u8)]) -> Vec<u8> {
        let mut out = vec![0u8; dims.iter().product()];
        for &([x, y, z], label) in voxels {
            out[x + dims[0] * (y + dims[1] * z)] = label;
        }
        out
    }

    fn keep_largest(labels_or_regions: Value) -> Postprocessing {
        Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [{"labels_or_regions": labels_or_regions}],
        }))
        .unwrap()
    }

    fn run(pp: &Postprocessing, values: Vec<u8>, dims: [usize; 3]) -> (Vec<u8>, Vec<StepReport>) {
        let mut labels = Labels::U8(values);
        let reports = pp.apply(&mut labels, dims).unwrap();
        let Labels::U8(out) = labels else { unreachable!() };
        (out, reports)
    }

    #[test]
    fn voxels_touching_at_a_corner_or_an_edge_are_one_component() {
        let dims = [4, 4, 4];
        let corner = map(dims, &[([0, 0, 0], 1), ([1, 1, 1], 1)]);
        let mask: Vec<bool> = corner.iter().map(|&v| v == 1).collect();
        assert_eq!(Components::label(&mask, dims).unwrap().count(), 1);
        let edge = map(dims, &[([3, 0, 2], 1), ([3, 1, 3], 1)]);
        let mask: Vec<bool> = edge.iter().map(|&v| v == 1).collect();
        assert_eq!(Components::label(&mask, dims).unwrap().count(), 1);
        let apart = map(dims, &[([0, 0, 0], 1), ([2, 0, 0], 1), ([0, 3, 3], 1)]);
        let mask: Vec<bool> = apart.iter().map(|&v| v == 1).collect();
        let components = Components::label(&mask, dims).unwrap();
        assert_eq!(components.sizes(), [1, 1, 1]);
        assert_eq!(components.ids()[0], 1, "numbered in memory order");
        assert_eq!(components.ids()[2], 2);
    }

    #[test]
    fn corner_touching_voxels_are_one_component_when_keeping_the_largest() {
        // Label 1: two voxels touching at a corner (one component of 2 with full connectivity, a
        // three-way tie of single voxels with face connectivity) and one lone voxel.
        let dims = [5, 5, 5];
        let values = map(dims, &[([0, 0, 0], 1), ([1, 1, 1], 1), ([4, 4, 4], 1)]);
        let (out, reports) = run(&keep_largest(json!(1)), values, dims);
        assert_eq!(out, map(dims, &[([0, 0, 0], 1), ([1, 1, 1], 1)]));
        assert_eq!(reports[0], StepReport { components: 2, kept_components: 1, kept_voxels: 2, removed_voxels: 1 });
    }

    #[test]
    fn every_component_of_the_largest_size_is_kept() {
        let dims = [7, 3, 1];
        let values = map(dims, &[([0, 0, 0], 2), ([0, 1, 0], 2), ([3, 0, 0], 2), ([3, 1, 0], 2), ([6, 2, 0], 2)]);
        let (out, reports) = run(&keep_largest(json!([2])), values.clone(), dims);
        let mut expected = values;
        expected[6 + 7 * 2] = 0;
        assert_eq!(out, expected);
        assert_eq!(reports[0].kept_components, 2);
    }

    #[test]
    fn an_empty_mask_changes_nothing() {
        let dims = [3, 3, 3];
        let values = map(dims, &[([0, 0, 0], 1), ([2, 2, 2], 1)]);
        let (out, reports) = run(&keep_largest(json!(2)), values.clone(), dims);
        assert_eq!(out, values);
        assert_eq!(reports[0], StepReport { components: 0, kept_components: 0, kept_voxels: 0, removed_voxels: 0 });
        let (out, _) = run(&keep_largest(json!([])), values.clone(), dims);
        assert_eq!(out, values);
    }

    #[test]
    fn labels_and_regions_form_one_union_mask() {
        // Labels 1 and 2 touch and together outweigh the lone 3 + 3 pair; label 4 is not in the step.
        let dims = [8, 1, 1];
        let values: Vec<u8> = vec![1, 2, 1, 0, 3, 3, 0, 4];
        let want: Vec<u8> = vec![1, 2, 1, 0, 0, 0, 0, 4];
        for spelling in [json!([1, 2, 3]), json!([[1, 2, 3]]), json!([1, [2, 3]]), json!([[1, 2], 3, [3]])] {
            let (out, _) = run(&keep_largest(spelling.clone()), values.clone(), dims);
            assert_eq!(out, want, "{spelling}");
        }
        assert_eq!(keep_largest(json!([3, [2, 1], 1])).steps(), keep_largest(json!([1, 2, 3])).steps());
    }

    #[test]
    fn steps_run_in_order_on_the_previous_output() {
        // Union {1, 2} first removes the far 2-2 pair, after which label 2 has one component.
        // The other order would first remove the lone 2 (smaller than the 2-2 pair) and then
        // keep both 2-voxel pieces of the union (a tie): [1, 1, 0, 0, 2, 2, 0].
        let dims = [7, 1, 1];
        let values: Vec<u8> = vec![1, 1, 2, 0, 2, 2, 0];
        let pp = Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN, KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [{"labels_or_regions": [1, 2]}, {"labels_or_regions": 2}],
        }))
        .unwrap();
        let (out, reports) = run(&pp, values.clone(), dims);
        assert_eq!(out, vec![1, 1, 2, 0, 0, 0, 0]);
        assert_eq!(reports[1], StepReport { components: 1, kept_components: 1, kept_voxels: 1, removed_voxels: 0 });
        let reversed = Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN, KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [{"labels_or_regions": 2}, {"labels_or_regions": [1, 2]}],
        }))
        .unwrap();
        assert_eq!(run(&reversed, values, dims).0, vec![1, 1, 0, 0, 2, 2, 0]);
    }

    #[test]
    fn u16_maps_and_a_background_label_other_than_zero() {
        let dims = [5, 1, 1];
        let pp = Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [{"labels_or_regions": 300, "background_label": 7}],
        }))
        .unwrap();
        let mut labels = Labels::U16(vec![300, 300, 0, 300, 5]);
        pp.apply(&mut labels, dims).unwrap();
        assert_eq!(labels, Labels::U16(vec![300, 300, 0, 7, 5]));
        let mut small = Labels::U8(vec![0; 5]);
        let pp = Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [{"labels_or_regions": 1, "background_label": 300}],
        }))
        .unwrap();
        assert_eq!(pp.apply(&mut small, dims).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn dims_must_match_the_map() {
        let mut labels = Labels::U8(vec![1; 6]);
        let err = keep_largest(json!(1)).apply(&mut labels, [2, 2, 2]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ShapeMismatch);
    }

    #[test]
    fn no_steps_is_valid_and_does_nothing() {
        let pp = Postprocessing::from_json(&json!({"postprocessing_fns": [], "postprocessing_kwargs": []})).unwrap();
        assert!(pp.is_empty());
        assert_eq!(pp, Postprocessing::none());
        assert_eq!(pp.to_string(), "none");
        let (out, reports) = run(&pp, vec![1, 0, 1], [3, 1, 1]);
        assert_eq!((out, reports.len()), (vec![1, 0, 1], 0));
    }

    #[test]
    fn an_unknown_function_is_unsupported() {
        let err = Postprocessing::from_json(&json!({
            "postprocessing_fns": ["remove_small_components"],
            "postprocessing_kwargs": [{"labels_or_regions": 1}],
        }))
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedModel);
        assert!(
            err.message().contains("postprocessing.json: postprocessing_fns[0] is \"remove_small_components\""),
            "{err}"
        );
    }

    #[test]
    fn malformed_files_are_invalid_models_naming_key_and_value() {
        let cases = [
            (json!([]), "not a JSON object"),
            (json!({"postprocessing_kwargs": []}), "key postprocessing_fns is missing"),
            (
                json!({"postprocessing_fns": "x", "postprocessing_kwargs": []}),
                "postprocessing_fns is not a list: \"x\"",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN], "postprocessing_kwargs": []}),
                "postprocessing_fns has 1 entries but postprocessing_kwargs has 0",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN], "postprocessing_kwargs": [[1]]}),
                "postprocessing_kwargs[0] is not an object: [1]",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN], "postprocessing_kwargs": [{}]}),
                "postprocessing_kwargs[0].labels_or_regions is missing",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
                       "postprocessing_kwargs": [{"labels_or_regions": 1, "connectivity": 1}]}),
                "postprocessing_kwargs[0].connectivity is not an argument",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
                       "postprocessing_kwargs": [{"labels_or_regions": [1, -2]}]}),
                "labels_or_regions is [1,-2]: -2 is not a non-negative integer",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
                       "postprocessing_kwargs": [{"labels_or_regions": 1.5}]}),
                "1.5 is not a non-negative integer",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
                       "postprocessing_kwargs": [{"labels_or_regions": "1"}]}),
                "\"1\" is not a non-negative integer",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
                       "postprocessing_kwargs": [{"labels_or_regions": [[[1]]]}]}),
                "lists nest deeper than regions",
            ),
            (
                json!({"postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
                       "postprocessing_kwargs": [{"labels_or_regions": 1, "background_label": null}]}),
                "background_label is null",
            ),
        ];
        for (value, expected) in cases {
            let err = Postprocessing::from_json(&value).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidModel, "{value}");
            assert!(err.message().starts_with("postprocessing.json: "), "{err}");
            assert!(err.message().contains(expected), "{value}: {err}");
        }
        assert_eq!(Postprocessing::from_json_text("{").unwrap_err().kind(), ErrorKind::InvalidModel);
    }

    #[test]
    fn labels_outside_the_model_are_rejected() {
        let pp = Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN, KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [{"labels_or_regions": [1, 2]}, {"labels_or_regions": [[2, 3]]}],
        }))
        .unwrap();
        pp.check_labels(4).unwrap();
        let err = pp.check_labels(3).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidModel);
        assert_eq!(
            err.message(),
            "postprocessing.json: postprocessing_kwargs[1].labels_or_regions names label 3, but the model's labels are 0..=2"
        );
        let background = Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [{"labels_or_regions": 1, "background_label": 5}],
        }))
        .unwrap();
        assert!(background.check_labels(3).unwrap_err().message().contains("background_label names label 5"));
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("nnrt-postprocess-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("postprocessing.json");
        std::fs::write(&path, r#"{"postprocessing_fns": ["f"], "postprocessing_kwargs": [{}]}"#).unwrap();
        let err = Postprocessing::from_file(&path).unwrap_err();
        assert!(err.message().starts_with(&format!("{}: postprocessing_fns[0]", path.display())), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = Postprocessing::from_file(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidModel);
        assert!(err.message().contains("cannot read"), "{err}");
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn one_line_description() {
        let pp = Postprocessing::from_json(&json!({
            "postprocessing_fns": [KEEP_LARGEST_COMPONENT_FN, KEEP_LARGEST_COMPONENT_FN, KEEP_LARGEST_COMPONENT_FN],
            "postprocessing_kwargs": [
                {"labels_or_regions": [1, 2]},
                {"labels_or_regions": 1},
                {"labels_or_regions": [2, 3], "background_label": 1},
            ],
        }))
        .unwrap();
        assert_eq!(pp.to_string(), "keep the largest component of {1, 2}, then of 1, then of {2, 3} (others become 1)");
        assert_eq!(pp.steps()[1].to_string(), "keep the largest component of 1");
        let summary = serde_json::to_value(&pp).unwrap();
        assert_eq!(summary["steps"][0], json!({"kind": "keep_largest_component", "labels": [1, 2], "background": 0}));
    }
}
