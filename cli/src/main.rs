//! `nnunet-rt`: predict with an nnU-Net v2 model folder, describe a model, evaluate predictions.

mod bundle;
mod evaluate;
mod interrupt;
mod predict;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "nnunet-rt", version, about = "Run nnU-Net v2 models without Python")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment a volume (or a folder of cases) with a model folder, like nnUNetv2_predict.
    Predict(predict::PredictArgs),
    /// Print what a model folder expects: channels, spacing, patch, labels, folds, head classes.
    Info(predict::InfoArgs),
    /// Compare predicted label maps with reference label maps (Dice, NSD, HD95, MSD, subtype metrics).
    Evaluate(evaluate::EvaluateArgs),
    /// Write a model folder as one bundle file (.nnrt), which -m accepts and hosts load from memory.
    Bundle(bundle::BundleArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut interrupt = None;
    let result = match cli.command {
        Command::Predict(args) => interrupt::Interrupt::install()
            .map_err(|e| nnunet_rt::Error::new(nnunet_rt::ErrorKind::Io, format!("cannot handle SIGINT/SIGTERM: {e}")))
            .and_then(|handler| predict::run(args, interrupt.insert(handler))),
        Command::Info(args) => predict::info(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Bundle(args) => bundle::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => match interrupt.as_ref().and_then(interrupt::Interrupt::received) {
            // The shell's convention for a program ended by a signal: 128 + its number.
            Some(sig) if err.kind() == nnunet_rt::ErrorKind::Cancelled => {
                eprintln!("nnunet-rt: {err}");
                std::process::ExitCode::from(128 + sig as u8)
            }
            _ => {
                eprintln!("nnunet-rt: error: {err}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
