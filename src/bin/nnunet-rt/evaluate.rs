//! `nnunet-rt evaluate` (filled in next).
#[derive(clap::Args)]
pub struct EvaluateArgs {}
pub fn run(_args: EvaluateArgs) -> nnunet_rt::Result<()> {
    Err(nnunet_rt::Error::new(nnunet_rt::ErrorKind::InvalidArgument, "evaluate is not available yet"))
}
