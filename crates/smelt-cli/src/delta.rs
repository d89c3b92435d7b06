//! `smelt diff`, `smelt patch`, and what `smelt inspect` shows of an update file. The work is
//! in smelt-delta; this module maps the files, writes outputs atomically
//! (`smelt_convert::atomic`), and renders reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use smelt_convert::atomic::{check_destination, AtomicFile};
use smelt_delta::{CodecFamily, DiffOptions, Method};

use crate::size;

/// Codec family of `smelt diff --codec`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CodecArg {
    /// Smallest updates.
    Zstd,
    /// Fastest decode on small CPUs (XOR and plain only: lz4's dictionary holds 64 KiB).
    Lz4,
}

/// Arguments of `smelt diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// The version devices have.
    old: PathBuf,
    /// The version they should get.
    new: PathBuf,
    /// The update file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// zstd (smallest) or lz4 (fastest to apply).
    #[arg(long, value_enum, default_value = "zstd")]
    codec: CodecArg,
    /// zstd level, 1-22.
    #[arg(long, default_value_t = smelt_delta::diff::DEFAULT_LEVEL)]
    level: i32,
    /// Also write the per-entry report as JSON (schema smelt.diff/1).
    #[arg(long, value_name = "REPORT")]
    json: Option<PathBuf>,
}

/// Arguments of `smelt patch`.
#[derive(clap::Args)]
pub struct PatchArgs {
    /// The version the update was made from.
    old: PathBuf,
    /// The update.
    update: PathBuf,
    /// Where to write the new version (replaced only when every hash matches).
    #[arg(short, long)]
    output: PathBuf,
}

fn map(path: &Path) -> Result<bytes::Bytes> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    smelt_tensor::storage::map_file(&f).with_context(|| format!("cannot read {}", path.display()))
}

#[derive(Serialize)]
struct DiffJson<'a> {
    #[serde(flatten)]
    report: &'a smelt_delta::DiffReport,
    seconds: f64,
}

/// Runs `smelt diff`.
pub fn run_diff(args: &DiffArgs) -> Result<ExitCode> {
    if !(1..=22).contains(&args.level) {
        bail!("--level must be between 1 and 22, not {}", args.level);
    }
    check_destination(&args.output).with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(j) = &args.json {
        check_destination(j).with_context(|| format!("cannot write {}", j.display()))?;
    }
    let start = Instant::now();
    let old = map(&args.old)?;
    let new = map(&args.new)?;
    let codec = match args.codec {
        CodecArg::Zstd => CodecFamily::Zstd,
        CodecArg::Lz4 => CodecFamily::Lz4,
    };
    let d = smelt_delta::diff(
        &old,
        &new,
        &args.old,
        &args.new,
        DiffOptions { codec, level: args.level, ..DiffOptions::default() },
    )
    .with_context(|| format!("cannot diff {} -> {}", args.old.display(), args.new.display()))?;
    let mut f = AtomicFile::create(&args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    d.write_to(&mut f).with_context(|| format!("cannot write {}", args.output.display()))?;
    f.commit().with_context(|| format!("cannot write {}", args.output.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let r = &d.report;
    let methods: Vec<String> =
        r.methods.iter().map(|m| format!("{} {}", m.method.name(), m.entries)).collect();
    eprintln!(
        "update {}: {} ({:.2}% of {}), {} entries ({}), {:.1} s",
        args.output.display(),
        size::bytes(r.update_bytes),
        100.0 * r.update_bytes as f64 / (r.new_bytes.max(1)) as f64,
        size::bytes(r.new_bytes),
        r.entries.len(),
        methods.join(", "),
        seconds
    );
    if let Some(path) = &args.json {
        let mut f = AtomicFile::create(path).with_context(|| format!("cannot write {}", path.display()))?;
        serde_json::to_writer_pretty(&mut f, &DiffJson { report: r, seconds })?;
        std::io::Write::write_all(&mut f, b"\n")?;
        f.commit().with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `smelt patch`.
pub fn run_patch(args: &PatchArgs) -> Result<ExitCode> {
    check_destination(&args.output).with_context(|| format!("cannot write {}", args.output.display()))?;
    let start = Instant::now();
    let old = map(&args.old)?;
    let update = map(&args.update)?;
    // Damaged update or wrong base: refused here, before the output file exists. Checked once:
    // `apply` does not hash the base and the update again.
    let u = smelt_delta::patch::check(&old, &update)
        .with_context(|| format!("cannot apply {} to {}", args.update.display(), args.old.display()))?;
    let mut f = AtomicFile::create(&args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let stats = smelt_delta::patch::apply(&old, &update, &u, &mut f)
        .with_context(|| format!("cannot apply {} to {}", args.update.display(), args.old.display()))?;
    f.commit().with_context(|| format!("cannot write {}", args.output.display()))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "patched {}: {} in {} entries, every hash verified, {:.2} s ({:.0} MB/s)",
        args.output.display(),
        size::bytes(stats.bytes_written),
        stats.entries,
        secs,
        stats.bytes_written as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct UpdateSummary {
    schema: &'static str,
    path: String,
    format: &'static str,
    version: u32,
    codec: CodecFamily,
    bytes: u64,
    base_bytes: u64,
    base_blake3: String,
    result_bytes: u64,
    result_blake3: String,
    entries: Vec<UpdateEntry>,
}

#[derive(Serialize)]
struct UpdateEntry {
    name: String,
    kind: smelt_delta::EntryKind,
    method: Method,
    group: u8,
    bytes_before: u64,
    bytes_after: u64,
    old_range: Option<[u64; 2]>,
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// For `smelt inspect`: when `path` is an update file, prints its summary and returns the exit
/// code; `None` when it is not an update (inspect reads it as a model).
pub fn inspect_update(path: &Path, json: bool) -> Result<Option<ExitCode>> {
    if path.is_dir() {
        return Ok(None);
    }
    let mut magic = [0u8; 8];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        f.read(&mut magic).unwrap_or(0)
    };
    if !smelt_delta::is_update(&magic[..n]) {
        return Ok(None);
    }
    let bytes = map(path)?;
    let u = smelt_delta::format::parse(&bytes).with_context(|| format!("{}", path.display()))?;
    smelt_delta::format::verify_trailer(&bytes, &u).with_context(|| format!("{}", path.display()))?;
    let s = UpdateSummary {
        schema: "smelt.inspect-update/1",
        path: path.display().to_string(),
        format: "smelt update",
        version: smelt_delta::format::VERSION,
        codec: u.header.codec,
        bytes: bytes.len() as u64,
        base_bytes: u.header.base_len,
        base_blake3: hex(&u.header.base_hash),
        result_bytes: u.header.result_len,
        result_blake3: hex(&u.header.result_hash),
        entries: u
            .entries
            .iter()
            .map(|e| UpdateEntry {
                name: e.name.clone(),
                kind: e.kind,
                method: e.method,
                group: e.group,
                bytes_before: e.out_len,
                bytes_after: e.payload_len,
                old_range: e.method.uses_source().then_some([e.src_offset, e.src_offset + e.src_len]),
            })
            .collect(),
    };
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&s)?;
        out.push('\n');
    } else {
        render_update(&s, &mut out);
    }
    print!("{out}");
    Ok(Some(ExitCode::SUCCESS))
}

fn render_update(s: &UpdateSummary, out: &mut String) {
    use std::fmt::Write as _;
    let codec = match s.codec {
        CodecFamily::Zstd => "zstd",
        CodecFamily::Lz4 => "lz4",
    };
    let _ = writeln!(out, "{}: smelt update v{} ({codec}), {}", s.path, s.version, size::bytes(s.bytes));
    let _ = writeln!(out, "base:    {} bytes, BLAKE3 {}", s.base_bytes, s.base_blake3);
    let _ = writeln!(out, "result:  {} bytes, BLAKE3 {}", s.result_bytes, s.result_blake3);
    let mut totals: Vec<(Method, usize, u64, u64)> = Vec::new();
    for e in &s.entries {
        match totals.iter_mut().find(|t| t.0 == e.method) {
            Some(t) => {
                t.1 += 1;
                t.2 += e.bytes_before;
                t.3 += e.bytes_after;
            }
            None => totals.push((e.method, 1, e.bytes_before, e.bytes_after)),
        }
    }
    let _ = writeln!(out, "entries: {}", s.entries.len());
    for (m, n, before, after) in &totals {
        let _ = writeln!(
            out,
            "  {:<12} {:>6} entries  {:>12} -> {:>12}",
            m.name(),
            n,
            size::bytes(*before),
            size::bytes(*after)
        );
    }
    let width = s.entries.iter().map(|e| e.name.len()).max().unwrap_or(4).clamp(4, 60);
    let _ = writeln!(
        out,
        "\n{:<width$}  {:<11} {:>5}  {:>12}  {:>12}",
        "name", "method", "group", "before", "after"
    );
    for e in &s.entries {
        let _ = writeln!(
            out,
            "{:<width$}  {:<11} {:>5}  {:>12}  {:>12}",
            e.name,
            e.method.name(),
            e.group,
            e.bytes_before,
            e.bytes_after
        );
    }
}
