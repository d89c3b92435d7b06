//! `smelt validate REFERENCE CANDIDATE`: runs both models with smelt's interpreter on the same
//! inputs (an `.npz`, or N random input sets from a seed) and measures, per output, max and
//! mean absolute error, cosine similarity and SQNR (smelt-quant's definitions), and for logits
//! outputs top-1 agreement and the KL divergence of the candidate's softmax from the
//! reference's. Thresholds (flags, or a recipe's `[validate]` table, flags winning) turn that into a verdict: exit 0 when all hold, 1 when one fails,
//! 2 on bad input. A table for people; `--json` (schema `smelt.validate/1`) for machines.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use smelt_convert::recipe::{Recipe, Thresholds, ValidateRecipe};
use smelt_quant::metrics::ErrorSums;
use smelt_runtime::{Data, InputSpec, Value};
use smelt_tensor::DType;

use crate::run::{load_feeds, load_session};

/// Arguments of `smelt validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The reference model (.onnx, or a .smelt blob converted from ONNX), e.g. the float export.
    reference: PathBuf,
    /// The candidate model (.onnx, or a .smelt blob converted from ONNX), e.g. the quantized
    /// one; same inputs and outputs.
    candidate: PathBuf,
    /// Inputs from an .npz (numpy.savez), arrays named after the graph inputs.
    #[arg(long, value_name = "FILE.npz", conflicts_with = "random")]
    inputs: Option<PathBuf>,
    /// Run on N random input sets (floats standard normal; integers uniform in
    /// 0..--int-high; symbolic dims taken as 1).
    #[arg(long, value_name = "N")]
    random: Option<usize>,
    /// Seed of the random inputs.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Exclusive upper bound of random integer inputs (token ids, indices).
    #[arg(long, value_name = "K", default_value_t = 32)]
    int_high: i64,
    /// Fail when any output's max absolute error exceeds X.
    #[arg(long, value_name = "X")]
    max_abs: Option<f64>,
    /// Fail when any output's cosine similarity is below Y.
    #[arg(long, value_name = "Y")]
    min_cosine: Option<f64>,
    /// Fail when any logits output's top-1 agreement is below Z (a fraction, 0..=1).
    #[arg(long, value_name = "Z")]
    min_top1: Option<f64>,
    /// Treat this output as logits (classes on the last axis); default: outputs whose name
    /// contains "logits".
    #[arg(long, value_name = "NAME")]
    logits: Vec<String>,
    /// Thresholds from a recipe file's [validate] table (and [validate.outputs.NAME] tables
    /// per output); --max-abs, --min-cosine and --min-top1 override it. See docs/recipe.md.
    #[arg(long, value_name = "FILE")]
    recipe: Option<PathBuf>,
    /// Also write the report as JSON (schema smelt.validate/1).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct OutputReport {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    max_abs: f64,
    mean_abs: f64,
    cosine: f64,
    sqnr_db: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    top1_agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kl_divergence: Option<f64>,
}

#[derive(Serialize)]
struct Check {
    output: String,
    metric: &'static str,
    value: f64,
    threshold: f64,
    passed: bool,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    reference: String,
    candidate: String,
    input_sets: usize,
    inputs: String,
    outputs: Vec<OutputReport>,
    checks: Vec<Check>,
    passed: bool,
}

/// splitmix64: a small, fully specified generator, so `--seed` means the same inputs everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn random_feeds(specs: &[InputSpec], rng: &mut Rng, int_high: i64) -> Result<Vec<(String, Value)>> {
    let mut feeds = Vec::new();
    for s in specs {
        let shape: Vec<usize> = match &s.shape {
            Some(d) => d.iter().map(|x| x.unwrap_or(1)).collect(),
            None => bail!("input '{}' has no declared shape; give --inputs instead of --random", s.name),
        };
        let n: usize = shape.iter().product();
        let dtype =
            s.dtype.with_context(|| format!("input '{}' has no declared dtype; give --inputs", s.name))?;
        let data = match dtype {
            DType::F32 | DType::F16 | DType::BF16 | DType::F64 => {
                Data::F64((0..n).map(|_| rng.normal()).collect())
            }
            DType::Bool => Data::Bool((0..n).map(|_| rng.next_u64() & 1 == 1).collect()),
            _ => Data::I64((0..n).map(|_| (rng.next_u64() % int_high.max(1) as u64) as i64).collect()),
        };
        let data =
            data.cast(dtype).with_context(|| format!("input '{}': cannot make random {dtype}", s.name))?;
        feeds.push((s.name.clone(), Value::new(shape, data)));
    }
    Ok(feeds)
}

/// Per-output accumulators over all input sets.
struct Acc {
    dtype: DType,
    shape: Vec<usize>,
    sums: ErrorSums,
    rows: usize,
    top1: usize,
    kl: f64,
}

fn softmax(x: &[f32]) -> Vec<f64> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Runs `smelt validate`.
pub fn run(args: &ValidateArgs) -> Result<ExitCode> {
    let recipe = match &args.recipe {
        Some(p) => Recipe::from_file(p, None, &|_| {})?.validate,
        None => ValidateRecipe::default(),
    };
    let cli = Thresholds { max_abs: args.max_abs, min_cosine: args.min_cosine, min_top1: args.min_top1 };
    smelt_tensor::storage::retain_freed_memory();
    let reference = load_session(&args.reference)?;
    let candidate = load_session(&args.candidate)?;
    if reference.output_names() != candidate.output_names() {
        bail!("the models' outputs differ: {:?} vs {:?}", reference.output_names(), candidate.output_names());
    }
    for (name, _) in &recipe.outputs {
        if !reference.output_names().contains(&name.as_str()) {
            bail!(
                "{}: [validate.outputs.{name}]: the models have no output '{name}' (outputs: {:?})",
                args.recipe.as_deref().unwrap_or(Path::new("")).display(),
                reference.output_names()
            );
        }
    }
    let sets: Vec<Vec<(String, Value)>> = match (&args.inputs, args.random) {
        (Some(p), _) => vec![load_feeds(&[], Some(p))?],
        (None, Some(n)) if n > 0 => {
            let mut rng = Rng(args.seed);
            (0..n)
                .map(|_| random_feeds(reference.inputs(), &mut rng, args.int_high))
                .collect::<Result<_>>()?
        }
        _ => bail!("give --inputs FILE.npz or --random N (N >= 1)"),
    };
    let is_logits = |name: &str| {
        args.logits.iter().any(|l| l == name)
            || (args.logits.is_empty() && name.to_lowercase().contains("logits"))
    };
    let mut accs: Vec<(String, Acc)> = Vec::new();
    for feeds in &sets {
        let r = reference.run(feeds.clone()).with_context(|| format!("{}", args.reference.display()))?;
        let c = candidate.run(feeds.clone()).with_context(|| format!("{}", args.candidate.display()))?;
        for ((name, rv), (_, cv)) in r.iter().zip(&c) {
            if rv.shape != cv.shape {
                bail!(
                    "output '{name}': shape {:?} from the reference, {:?} from the candidate",
                    rv.shape,
                    cv.shape
                );
            }
            let (rf, cf) = (rv.data.to_f32_vec(), cv.data.to_f32_vec());
            let acc = match accs.iter_mut().find(|(n, _)| n == name) {
                Some((_, a)) => a,
                None => {
                    accs.push((
                        name.clone(),
                        Acc {
                            dtype: rv.dtype(),
                            shape: rv.shape.clone(),
                            sums: ErrorSums::default(),
                            rows: 0,
                            top1: 0,
                            kl: 0.0,
                        },
                    ));
                    &mut accs.last_mut().expect("just pushed").1
                }
            };
            acc.sums = acc.sums.merge(&ErrorSums::of(&rf, &cf));
            let classes = rv.shape.last().copied().unwrap_or(0);
            if is_logits(name) && classes >= 2 {
                for (rr, cr) in rf.chunks(classes).zip(cf.chunks(classes)) {
                    acc.rows += 1;
                    acc.top1 += (argmax(rr) == argmax(cr)) as usize;
                    let (p, q) = (softmax(rr), softmax(cr));
                    acc.kl += p
                        .iter()
                        .zip(&q)
                        .map(|(&p, &q)| if p > 0.0 { p * (p / q.max(1e-300)).ln() } else { 0.0 })
                        .sum::<f64>();
                }
            }
        }
    }
    let mut outputs = Vec::new();
    let mut checks = Vec::new();
    for (name, a) in &accs {
        let m = a.sums.metrics();
        let logits = a.rows > 0;
        let top1 = logits.then(|| a.top1 as f64 / a.rows as f64);
        let kl = logits.then(|| a.kl / a.rows as f64);
        let mut check = |metric: &'static str, value: f64, threshold: Option<f64>, at_most: bool| {
            if let Some(t) = threshold {
                let passed = if at_most { value <= t } else { value >= t };
                checks.push(Check { output: name.clone(), metric, value, threshold: t, passed });
            }
        };
        let t = recipe.for_output(name).overridden_by(cli);
        check("max_abs", m.max_abs, t.max_abs, true);
        check("cosine", m.cosine, t.min_cosine, false);
        match top1 {
            Some(t1) => check("top1_agreement", t1, t.min_top1, false),
            None if t.min_top1.is_some()
                && recipe.outputs.iter().any(|(n, o)| n == name && o.min_top1.is_some()) =>
            {
                bail!("[validate.outputs.{name}] sets min_top1, but output '{name}' is not treated as logits (name it with --logits)")
            }
            None => {}
        }
        outputs.push(OutputReport {
            name: name.clone(),
            dtype: a.dtype.to_string(),
            shape: a.shape.clone(),
            max_abs: m.max_abs,
            mean_abs: m.mean_abs,
            cosine: m.cosine,
            sqnr_db: m.sqnr_db,
            top1_agreement: top1,
            kl_divergence: kl,
        });
    }
    if cli.min_top1.or(recipe.all.min_top1).is_some() && !outputs.iter().any(|o| o.top1_agreement.is_some()) {
        bail!("--min-top1 (or the recipe's validate.min_top1) given but no output is treated as logits (name one with --logits NAME)");
    }
    let passed = checks.iter().all(|c| c.passed);
    let report = Report {
        schema: "smelt.validate/1",
        reference: args.reference.display().to_string(),
        candidate: args.candidate.display().to_string(),
        input_sets: sets.len(),
        inputs: match &args.inputs {
            Some(p) => p.display().to_string(),
            None => format!("random, seed {}", args.seed),
        },
        outputs,
        checks,
        passed,
    };
    print!("{}", table(&report));
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        let mut f = smelt_convert::atomic::AtomicFile::create(p)
            .with_context(|| format!("{}: cannot create", p.display()))?;
        f.write_all(text.as_bytes()).with_context(|| format!("{}: cannot write", p.display()))?;
        f.commit().with_context(|| format!("{}: cannot write", p.display()))?;
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "reference {}\ncandidate {}\ninputs    {} ({} set(s))\n",
        r.reference, r.candidate, r.inputs, r.input_sets
    );
    let _ = writeln!(
        s,
        "{:<24} {:>12} {:>12} {:>10} {:>10} {:>8} {:>10}",
        "output", "max abs", "mean abs", "cosine", "SQNR dB", "top-1", "KL"
    );
    for o in &r.outputs {
        let top1 = o.top1_agreement.map_or("-".to_string(), |x| format!("{x:.4}"));
        let kl = o.kl_divergence.map_or("-".to_string(), |x| format!("{x:.3e}"));
        let _ = writeln!(
            s,
            "{:<24} {:>12.4e} {:>12.4e} {:>10.6} {:>10.2} {:>8} {:>10}",
            o.name, o.max_abs, o.mean_abs, o.cosine, o.sqnr_db, top1, kl,
        );
    }
    if !r.checks.is_empty() {
        let _ = writeln!(s);
        for c in &r.checks {
            let op = if c.metric == "max_abs" { "<=" } else { ">=" };
            let _ = writeln!(
                s,
                "{} {} {} = {:.6} (must be {op} {})",
                if c.passed { "ok  " } else { "FAIL" },
                c.output,
                c.metric,
                c.value,
                c.threshold
            );
        }
    }
    let _ = writeln!(s, "\n{}", if r.passed { "PASS" } else { "FAIL: a threshold does not hold" });
    s
}
