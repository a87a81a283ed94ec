//! `nnunet-rt`: predict with an nnU-Net v2 model folder, describe a model, evaluate predictions.

mod evaluate;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "nnunet-rt", version, about = "Run nnU-Net v2 models without Python")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare predicted label maps with reference label maps (Dice, NSD, HD95, MSD, subtype metrics).
    Evaluate(evaluate::EvaluateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Evaluate(args) => evaluate::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nnunet-rt: error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
