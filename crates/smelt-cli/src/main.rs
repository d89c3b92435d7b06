//! The `smelt` command: clap parsing, exit codes, and error printing. Each subcommand lives in
//! its own module; library crates do the work.
//!
//! Exit codes: 0 success; 1 a check ran and failed (validation thresholds); 2 bad input or
//! usage — the error names the file, the tensor or field, and the byte offset.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod convert;
mod delta;
mod inspect;
mod run;
mod size;
mod validate;

/// Exit code for bad input, bad usage, or any error that stopped the command.
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(name = "smelt", version, about = "Convert, quantize and verify machine-learning models", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a model file or checkpoint directory holds: format, tensors, dtypes,
    /// architecture, metadata.
    Inspect(inspect::InspectArgs),
    /// Quantize or cast a model into a smelt blob, GGUF or safetensors, and report what was lost.
    Convert(convert::ConvertArgs),
    /// Make an OTA update that turns OLD into NEW (tensor-aware, verified).
    Diff(delta::DiffArgs),
    /// Rebuild NEW from OLD and an update, checking every hash; nothing is written on a mismatch.
    Patch(delta::PatchArgs),
    /// Run an ONNX model (or a smelt blob converted from one) with smelt's reference interpreter
    /// on .npy/.npz/.pb inputs.
    Run(run::RunArgs),
    /// Run a reference and a candidate model on the same inputs and measure the difference;
    /// exit 1 when a threshold does not hold.
    Validate(validate::ValidateArgs),
}

fn main() -> ExitCode {
    // Ctrl-C or SIGTERM: delete any output still being written (destructors do not run when
    // a signal ends the process), then exit as a shell expects (128 + SIGINT).
    let _ = ctrlc::set_handler(|| {
        smelt_convert::atomic::remove_pending();
        eprintln!("\nsmelt: interrupted; no output written");
        std::process::exit(130);
    });
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Diff(args) => delta::run_diff(&args),
        Command::Patch(args) => delta::run_patch(&args),
        Command::Run(args) => run::run(&args),
        Command::Validate(args) => validate::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("smelt: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
