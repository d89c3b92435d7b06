//! `smelt convert`: recipe + model → plan → (dry run: print it) → quantize and write atomically
//! → report. The pipeline lives in smelt-convert; this module is arguments and presentation.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use smelt_convert::plan::{self, OutputFormat, Plan};
use smelt_convert::recipe::Recipe;
use smelt_convert::scheme::{Scheme, SchemeOptions, TernaryPacking, SCHEME_NAMES};

use crate::size;

/// Arguments of `smelt convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The model to convert: anything `smelt inspect` reads.
    input: PathBuf,
    /// Output file. Its extension picks the format (.smelt, .gguf, .safetensors, .onnx) unless
    /// --format is given.
    #[arg(short, long)]
    output: PathBuf,
    /// Scheme for weight matrices (overrides the recipe's `quant`).
    #[arg(long, value_name = "SCHEME", long_help = format!("Scheme for weight matrices (overrides the recipe's `quant`). One of: {}", SCHEME_NAMES.join(", ")))]
    quant: Option<String>,
    /// Output format: blob, gguf, safetensors, onnx (quantized operators: MatMulInteger,
    /// MatMulNBits, MatMulBnb4) or onnx-qdq (DequantizeLinear on the weights).
    #[arg(long)]
    format: Option<String>,
    /// Recipe file (TOML): defaults, rules and options. See docs/recipe.md.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Print the plan, the predicted size and bits per weight; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Worker threads (default: all cores). The output is identical whatever the count.
    #[arg(long)]
    threads: Option<usize>,
    /// int4: group size (32, 64 or 128).
    #[arg(long)]
    group_size: Option<u32>,
    /// int8/int4: asymmetric (zero points) instead of symmetric.
    #[arg(long)]
    asym: bool,
    /// int8: one scale per tensor instead of per output channel.
    #[arg(long)]
    per_tensor: bool,
    /// nf4: double quantization of the absmax statistics.
    #[arg(long)]
    double_quant: bool,
    /// ternary: base-3 packing (5 trits per byte) instead of 2 bits per weight.
    #[arg(long)]
    base3: bool,
    /// Accept NaN and Inf weights instead of refusing them.
    #[arg(long)]
    allow_nonfinite: bool,
    /// An earlier quantized version of this model (a .smelt blob or a .gguf): keep its blocks
    /// wherever they still represent the new weights within the bound a fresh quantization
    /// guarantees, so that the two versions differ only where the weights moved.
    #[arg(long, value_name = "OLD")]
    like: Option<PathBuf>,
    /// With --like: how far past the fresh quantization's bound a reused block may go, as a
    /// multiple of it (1.0: never worse than fresh quantization guarantees).
    #[arg(long, value_name = "F", default_value_t = 1.0, requires = "like")]
    like_tolerance: f32,
}

impl ConvertArgs {
    fn adjust_options(&self, o: &mut SchemeOptions) {
        if let Some(g) = self.group_size {
            o.group = g;
        }
        if self.asym {
            o.symmetric = false;
        }
        if self.per_tensor {
            o.per_channel = false;
        }
        if self.double_quant {
            o.double_quant = true;
        }
        if self.base3 {
            o.ternary_packing = TernaryPacking::Base3;
        }
    }

    fn recipe(&self) -> Result<Recipe> {
        let adjust = |o: &mut SchemeOptions| self.adjust_options(o);
        let mut recipe = match &self.recipe {
            Some(path) => Recipe::from_file(path, self.quant.as_deref(), &adjust)?,
            None => {
                let mut opts = SchemeOptions::default();
                adjust(&mut opts);
                let quant = self.quant.as_deref().map(|q| Scheme::parse(q, &opts)).transpose()?;
                let mut r = Recipe::with_quant(quant);
                r.options = opts;
                r
            }
        };
        if self.allow_nonfinite {
            recipe.allow_nonfinite = true;
        }
        Ok(recipe)
    }

    fn format(&self, recipe: &Recipe) -> Result<OutputFormat> {
        if let Some(f) = self.format.as_deref().or(recipe.format.as_deref()) {
            return OutputFormat::from_name(f).with_context(|| {
                format!("unknown output format '{f}'; use blob, gguf, safetensors, onnx or onnx-qdq")
            });
        }
        OutputFormat::from_extension(&self.output).with_context(|| {
            format!(
                "cannot tell the output format from '{}': use a .smelt, .gguf, .safetensors or .onnx extension, or --format",
                self.output.display()
            )
        })
    }
}

/// Runs `smelt convert`.
pub fn run(args: &ConvertArgs) -> Result<ExitCode> {
    let recipe = args.recipe()?;
    let format = args.format(&recipe)?;
    if !args.dry_run {
        // Fail on an unwritable destination before reading a byte of the model.
        smelt_convert::atomic::check_destination(&args.output)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        if let Some(r) = &args.report {
            smelt_convert::atomic::check_destination(r)
                .with_context(|| format!("cannot write {}", r.display()))?;
        }
    }
    if args.dry_run {
        let model = smelt_formats::open(&args.input)?;
        let plan = plan::plan(&model, &recipe, format)?;
        print!("{}", render_plan(&plan));
        return Ok(ExitCode::SUCCESS);
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    let like = args
        .like
        .as_ref()
        .map(|old| smelt_convert::like::LikeOptions { old: old.clone(), tolerance: args.like_tolerance });
    let progress = Progress::new();
    let show = |i: usize, n: usize, name: &str| progress.show(i, n, name);
    let job = smelt_convert::run::ConvertJob {
        input: &args.input,
        output: &args.output,
        recipe: &recipe,
        format,
        threads: args.threads,
        progress: progress.enabled.then_some(&show as &(dyn Fn(usize, usize, &str) + Sync)),
        like: like.as_ref(),
    };
    let report = smelt_convert::run::convert(&job)?;
    progress.clear();
    eprint!("{}", report.render_table());
    if let Some(path) = &args.report {
        let mut f = smelt_convert::atomic::AtomicFile::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        serde_json::to_writer_pretty(&mut f, &report)?;
        std::io::Write::write_all(&mut f, b"\n")?;
        f.commit().with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A one-line progress display on stderr, only when stderr is a terminal.
struct Progress {
    enabled: bool,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress { enabled: std::io::stderr().is_terminal() }
    }

    fn show(&self, i: usize, n: usize, name: &str) {
        if self.enabled {
            let name: String = name.chars().take(60).collect();
            eprint!("\r\x1b[2K[{}/{n}] {name}", i + 1);
        }
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The plan as a table: one line per tensor, then totals.
pub fn render_plan(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name_w = plan.entries.iter().map(|e| e.name.len()).max().unwrap_or(4).clamp(4, 56);
    let _ = writeln!(
        out,
        "{:<name_w$}  {:<6} {:<16} {:<26} {:>10} {:>10}  why",
        "tensor", "dtype", "shape", "scheme", "in", "out"
    );
    for e in &plan.entries {
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<6} {:<16} {:<26} {:>10} {:>10}  {}",
            e.name,
            e.dtype.name(),
            format!("{:?}", e.shape),
            e.scheme.to_string(),
            size::bytes(e.in_bytes),
            size::bytes(e.out_bytes),
            e.reason
        );
    }
    let _ = writeln!(
        out,
        "\n{} tensors, {} parameters: {} -> {} predicted ({:.2} bits per weight), format {}",
        plan.entries.len(),
        size::count(plan.parameters()),
        size::bytes(plan.in_bytes()),
        size::bytes(plan.out_bytes()),
        plan.bits_per_weight(),
        plan.format.name()
    );
    out
}
