//! Where the network runs and in which arithmetic: the one vocabulary every surface uses.
//!
//! The CLI (`--device`, `--network-precision`), the C ABI, the C++ and Python bindings and the
//! Slicer module all parse and print these names through [`std::str::FromStr`] and
//! [`std::fmt::Display`] here, so a name means the same thing everywhere.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where the network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// OpenVINO on the CPU when its plugin loads and sees this CPU, else ONNX Runtime's CPU
    /// provider. Either way float32 unless bfloat16 is asked for, so `auto` never changes the
    /// answer class on its own.
    #[default]
    Auto,
    /// ONNX Runtime's own CPU provider (MLAS), float32.
    Cpu,
    /// The OpenVINO execution provider on the CPU; failing to load it is an error.
    OpenVino,
    /// The CUDA provider on the given GPU; registration failure is an error, never a CPU fallback.
    Cuda(i32),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::OpenVino => f.write_str("openvino"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
        }
    }
}

impl FromStr for Device {
    type Err = Error;

    /// `auto`, `cpu`, `openvino`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "openvino" => Ok(Device::OpenVino),
            "cuda" => Ok(Device::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|id| id.parse::<i32>().ok())
                .filter(|id| *id >= 0)
                .map(Device::Cuda)
                .ok_or_else(|| {
                    Error::invalid_argument(format!("device {other:?} is not one of auto, cpu, openvino, cuda, cuda:N"))
                }),
        }
    }
}

/// The arithmetic of the network itself (the logit accumulation around it is
/// [`crate::Precision`], a separate choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkPrecision {
    /// float32: nnU-Net's answer up to float noise (the default).
    #[default]
    F32,
    /// bfloat16 convolutions (AVX512_BF16 / AMX through OpenVINO): several times faster on CPUs
    /// that have them, at a measured cost in the answer (BENCHMARKS.md). Opt-in only.
    Bf16,
}

impl NetworkPrecision {
    /// OpenVINO's name for it (`INFERENCE_PRECISION_HINT`).
    pub(crate) fn openvino_hint(self) -> &'static str {
        match self {
            NetworkPrecision::F32 => "f32",
            NetworkPrecision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for NetworkPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.openvino_hint())
    }
}

impl FromStr for NetworkPrecision {
    type Err = Error;

    /// `f32` or `bf16`.
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "f32" => Ok(NetworkPrecision::F32),
            "bf16" => Ok(NetworkPrecision::Bf16),
            other => Err(Error::invalid_argument(format!("network precision {other:?} is not f32 or bf16"))),
        }
    }
}

/// The execution provider a model's sessions actually run on, after `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// OpenVINO on the CPU.
    OpenVino,
    /// CUDA on the given GPU.
    Cuda(i32),
}

impl Provider {
    /// ONNX Runtime's name of the execution provider.
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::OpenVino => "OpenVINOExecutionProvider",
            Provider::Cuda(_) => "CUDAExecutionProvider",
        }
    }

    /// The [`Device`] that names this provider explicitly.
    pub fn device(self) -> Device {
        match self {
            Provider::Cpu => Device::Cpu,
            Provider::OpenVino => Device::OpenVino,
            Provider::Cuda(id) => Device::Cuda(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for device in [Device::Auto, Device::Cpu, Device::OpenVino, Device::Cuda(0), Device::Cuda(3)] {
            assert_eq!(device.to_string().parse::<Device>().unwrap(), device);
        }
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        for precision in [NetworkPrecision::F32, NetworkPrecision::Bf16] {
            assert_eq!(precision.to_string().parse::<NetworkPrecision>().unwrap(), precision);
        }
    }

    #[test]
    fn bad_names_say_what_is_accepted() {
        for bad in ["", "gpu", "cuda:-1", "cuda:x", "CPU", "openvino:0"] {
            let error = bad.parse::<Device>().unwrap_err();
            assert!(error.message().contains("auto, cpu, openvino"), "{bad}: {error}");
        }
        assert!("fp16".parse::<NetworkPrecision>().unwrap_err().message().contains("f32 or bf16"));
    }
}
