//! `smelt run`: runs an ONNX model (or a smelt blob that carries one) with smelt's interpreter on inputs from `.npy`, `.npz` or
//! ONNX `TensorProto` (`.pb`) files, and writes the outputs to an `.npz` (or prints a
//! summary of each). Input loading and output writing are shared with `smelt validate`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use smelt_runtime::{Data, RuntimeError, Session, Value};
use smelt_tensor::DType;

/// Arguments of `smelt run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The model (.onnx, or a .smelt blob converted from an ONNX model, which carries its graph).
    model: PathBuf,
    /// One input: NAME=FILE, FILE being .npy or a TensorProto .pb (a .pb whose tensor is named
    /// may be given as FILE alone). Repeatable.
    #[arg(long = "input", value_name = "NAME=FILE")]
    input: Vec<String>,
    /// Inputs from an .npz archive (numpy.savez), arrays named after the graph inputs.
    #[arg(long, value_name = "FILE.npz")]
    inputs: Option<PathBuf>,
    /// Write the outputs to this .npz (by output name) instead of printing a summary.
    #[arg(short = 'o', long = "output", value_name = "OUT.npz")]
    output: Option<PathBuf>,
    /// Run the model N times on the same inputs and print each run's wall time and the
    /// median on stderr (loading the model and reading the inputs excluded); the outputs are
    /// the last run's.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Worker threads of the kernels (default: all cores; RAYON_NUM_THREADS also sets it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Print on stderr where the time went: wall time per op type over all runs, the largest
    /// first, with its node count and share (the first run included).
    #[arg(long)]
    profile: bool,
    /// Let idle workers sleep between the parallel regions of a run instead of spinning
    /// (spinning, the default, keeps every core busy while a run is in progress and saves
    /// waking a worker a few hundred times per run).
    #[arg(long)]
    no_spin: bool,
}

/// A value from a `.npy` array.
pub(crate) fn value_from_npy(a: &smelt_formats::npy::NpyArray, what: &Path) -> Result<Value> {
    let shape: Vec<usize> = a.shape.iter().map(|&d| d as usize).collect();
    let numel = shape.iter().product();
    let data = Data::from_le_bytes(a.dtype, &a.data, numel)
        .with_context(|| format!("{}: dtype {} is not supported by the runner", what.display(), a.dtype))?;
    Ok(Value::new(shape, data))
}

/// Reads `--input` and `--inputs` arguments into named values.
pub(crate) fn load_feeds(specs: &[String], npz: Option<&Path>) -> Result<Vec<(String, Value)>> {
    let mut feeds: Vec<(String, Value)> = Vec::new();
    if let Some(p) = npz {
        for (name, a) in smelt_formats::npz::read(p)? {
            let v = value_from_npy(&a, p).with_context(|| format!("array '{name}'"))?;
            feeds.push((name, v));
        }
    }
    for spec in specs {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) => (Some(n.to_string()), PathBuf::from(f)),
            None => (None, PathBuf::from(spec)),
        };
        let is_pb = file.extension().is_some_and(|e| e == "pb");
        let (pb_name, value) = if is_pb {
            let (t, _) = smelt_formats::onnx::read_tensor_pb(&file)?;
            let v = Value::from_tensor(&t).with_context(|| format!("{}", file.display()))?;
            (Some(t.name).filter(|n| !n.is_empty()), v)
        } else {
            (None, value_from_npy(&smelt_formats::npy::read(&file)?, &file)?)
        };
        let name = name.or(pb_name).with_context(|| format!("--input {spec}: give it as NAME=FILE"))?;
        if feeds.iter().any(|(n, _)| *n == name) {
            bail!("input '{name}' is given twice");
        }
        feeds.push((name, value));
    }
    Ok(feeds)
}

/// Writes named values to an `.npz` atomically. bf16 is written as f32 (`.npy` has no bf16);
/// 4-bit types as one int8/uint8 per element.
pub(crate) fn write_npz(path: &Path, values: &[(String, Value)]) -> Result<()> {
    let mut members = Vec::with_capacity(values.len());
    for (name, v) in values {
        let data = match v.dtype() {
            DType::BF16 => Data::F32(v.data.to_f32_vec()),
            DType::I4 => v.data.cast(DType::I8).context("cast")?,
            DType::U4 => v.data.cast(DType::U8).context("cast")?,
            _ => v.data.clone(),
        };
        let descr = smelt_formats::npz::npy_descr(data.dtype())
            .with_context(|| format!("output '{name}': no .npy type for {}", data.dtype()))?;
        let shape: Vec<u64> = v.shape.iter().map(|&d| d as u64).collect();
        members.push((name.clone(), smelt_formats::npz::npy_bytes(descr, &shape, &data.to_le_bytes())));
    }
    let bytes =
        smelt_formats::npz::npz_bytes(&members).context("outputs too large for a zip without zip64")?;
    let mut f = smelt_convert::atomic::AtomicFile::create(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    f.write_all(&bytes).with_context(|| format!("{}: cannot write", path.display()))?;
    f.commit().with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// `name  dtype [shape]  first values  min/max/mean`.
pub(crate) fn summary_line(name: &str, v: &Value) -> String {
    let f = v.data.to_f64_vec();
    let first: Vec<String> = f.iter().take(6).map(|x| format!("{x:.6}")).collect();
    let more = if f.len() > 6 { ", ..." } else { "" };
    let stats = if f.is_empty() {
        "empty".to_string()
    } else {
        let min = f.iter().copied().fold(f64::INFINITY, f64::min);
        let max = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = f.iter().sum::<f64>() / f.len() as f64;
        format!("min {min:.6}  max {max:.6}  mean {mean:.6}")
    };
    format!("{name}  {}  {:?}  [{}{more}]  {stats}", v.dtype(), v.shape, first.join(", "))
}

/// Loads an ONNX model or a smelt blob that carries a graph. Errors about the file itself
/// already name it; the others (graph, ops) get its name here.
pub(crate) fn load_session(path: &Path) -> Result<Session> {
    Session::load(path).map_err(|e| match e {
        RuntimeError::Format(_) | RuntimeError::BlobWithoutGraph { .. } | RuntimeError::NoGraph { .. } => {
            anyhow::Error::new(e)
        }
        e => anyhow::Error::new(e).context(path.display().to_string()),
    })
}

/// Nodes listed by name in the `--profile` output, slowest first.
const PROFILE_TOP_NODES: usize = 12;

/// The `--profile` tables: per op type, its nodes, total milliseconds and share of `total_ms`;
/// then the slowest nodes by name.
fn print_profile(ops: &[String], names: &[String], node_times: &[std::time::Duration], total_ms: f64) {
    let mut by_op: Vec<(String, usize, f64)> = Vec::new();
    for (op, t) in ops.iter().zip(node_times) {
        let ms = t.as_secs_f64() * 1e3;
        match by_op.iter_mut().find(|(o, _, _)| o == op) {
            Some(e) => {
                e.1 += 1;
                e.2 += ms;
            }
            None => by_op.push((op.clone(), 1, ms)),
        }
    }
    by_op.sort_by(|a, b| b.2.total_cmp(&a.2));
    let in_nodes: f64 = by_op.iter().map(|e| e.2).sum();
    eprintln!("{:<28} {:>6} {:>10} {:>7}", "op", "nodes", "ms", "share");
    for (op, n, ms) in &by_op {
        eprintln!("{op:<28} {n:>6} {ms:>10.3} {:>6.1}%", 100.0 * ms / total_ms.max(f64::MIN_POSITIVE));
    }
    eprintln!(
        "{:<28} {:>6} {:>10.3} {:>6.1}%",
        "(between nodes)",
        "",
        total_ms - in_nodes,
        100.0 * (total_ms - in_nodes) / total_ms.max(f64::MIN_POSITIVE)
    );
    let mut slowest: Vec<usize> = (0..node_times.len()).collect();
    slowest.sort_by(|&a, &b| node_times[b].cmp(&node_times[a]).then(a.cmp(&b)));
    eprintln!("\n{:<40} {:<28} {:>10} {:>7}", "slowest nodes", "op", "ms", "share");
    for &i in slowest.iter().take(PROFILE_TOP_NODES) {
        let ms = node_times[i].as_secs_f64() * 1e3;
        eprintln!(
            "{:<40} {:<28} {ms:>10.3} {:>6.1}%",
            names[i],
            ops[i],
            100.0 * ms / total_ms.max(f64::MIN_POSITIVE)
        );
    }
}

/// Runs `smelt run`.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global()
            .context("cannot start the thread pool")?;
    }
    smelt_tensor::storage::retain_freed_memory();
    let mut session = load_session(&args.model)?;
    session.set_spin(!args.no_spin);
    let feeds = load_feeds(&args.input, args.inputs.as_deref())?;
    let mut times = Vec::with_capacity(args.repeat as usize);
    let mut outputs = Vec::new();
    let mut node_times = Vec::new();
    for _ in 0..args.repeat {
        let feeds = feeds.clone();
        drop(std::mem::take(&mut outputs));
        let start = Instant::now();
        outputs =
            if args.profile { session.run_profiled(feeds, &mut node_times) } else { session.run(feeds) }
                .with_context(|| format!("{}", args.model.display()))?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    if args.profile {
        print_profile(&session.node_ops(), &session.node_names(), &node_times, times.iter().sum());
    }
    if args.repeat > 1 {
        for (i, t) in times.iter().enumerate() {
            eprintln!("run {}: {t:.3} ms", i + 1);
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = if sorted.len() % 2 == 1 {
            sorted[sorted.len() / 2]
        } else {
            (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
        };
        eprintln!(
            "{} runs: median {median:.3} ms, min {:.3} ms, max {:.3} ms (load and input reading excluded)",
            times.len(),
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
    match &args.output {
        Some(p) => write_npz(p, &outputs)?,
        None => {
            for (name, v) in &outputs {
                println!("{}", summary_line(name, v));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
