//! [`Session`]: a loaded graph ready to run — nodes in topological order with their
//! implementations looked up, value slots, initializers decoded once, what ops prepare at load
//! (quantized weights repacked for the kernels), and the memory plan (which slots to free
//! after each node: a value is dropped right after its last use).

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use smelt_formats::onnx::{Dim, ElemType, ValueType};
use smelt_formats::Model;
use smelt_tensor::DType;

use crate::error::{RuntimeError, UnsupportedOp};
use crate::fuse::Fusions;
use crate::node::{Node, OpCtx};
use crate::registry::{OpFn, Registry, ViewFn};
use crate::value::{Data, Value};

/// A graph input the caller must feed.
#[derive(Clone, Debug)]
pub struct InputSpec {
    /// Name.
    pub name: String,
    /// Declared element type, if any.
    pub dtype: Option<DType>,
    /// Declared dims (`None` entries are symbolic or unknown); `None` when the rank is unknown.
    pub shape: Option<Vec<Option<usize>>>,
    /// Symbolic dim names, parallel to `shape` (empty string when fixed or unnamed).
    pub dim_names: Vec<String>,
    slot: usize,
}

impl InputSpec {
    /// `name: dtype [d0, d1, ...]`, symbolic dims by name.
    pub fn describe(&self) -> String {
        let dt = self.dtype.map_or("?".to_string(), |d| d.to_string());
        let sh = match &self.shape {
            None => "[?]".to_string(),
            Some(s) => {
                let dims: Vec<String> = s
                    .iter()
                    .zip(&self.dim_names)
                    .map(|(d, n)| {
                        d.map_or_else(|| if n.is_empty() { "?".into() } else { n.clone() }, |v| v.to_string())
                    })
                    .collect();
                format!("[{}]", dims.join(", "))
            }
        };
        format!("{} {} {}", self.name, dt, sh)
    }
}

/// Largest number of elements a single value may have (a hostile Expand/ConstantOfShape
/// must not make the runner allocate without bound; ops that build values from a shape input
/// check this before allocating).
pub const MAX_VALUE_ELEMENTS: usize = 1 << 32;

static VALUE_ELEMENT_CAP: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(MAX_VALUE_ELEMENTS);

/// Lowers (or restores) the cap on a value's elements for this process, [`MAX_VALUE_ELEMENTS`]
/// unless set: a fuzzer runs hostile models under a cap its memory limit can hold.
pub fn set_value_element_cap(elements: usize) {
    VALUE_ELEMENT_CAP.store(elements, std::sync::atomic::Ordering::Relaxed);
}

/// The cap in force (see [`set_value_element_cap`]).
pub fn value_element_cap() -> usize {
    VALUE_ELEMENT_CAP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether `shape` is within [`value_element_cap`] counting each zero dimension as one: every
/// value the runner holds (initializers, inputs, every op's outputs) satisfies this, so a product
/// over any part of a live value's shape fits in `usize` even when another dimension is zero
/// (`[0, 2⁴⁰, 2⁴⁰]` has no elements, but its last two dimensions' product overflows).
pub fn shape_within_cap(shape: &[usize]) -> bool {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d.max(1))).is_some_and(|n| n <= value_element_cap())
}

/// What one run kept in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Values computed by nodes over the run.
    pub computed_values: usize,
    /// Most values (inputs and intermediates, not initializers) alive at once after a node.
    pub peak_live_values: usize,
}

/// A loaded, checked graph.
pub struct Session {
    nodes: Vec<Node>,
    runs: Vec<OpFn>,
    slot_count: usize,
    consts: Vec<(usize, Arc<Value>)>,
    inputs: Vec<InputSpec>,
    outputs: Vec<(String, usize)>,
    free_after: Vec<Vec<usize>>,
    /// Per node, what its op prepared at load (see [`crate::registry::PrepareFn`]).
    prepared: Vec<Option<PreparedState>>,
    /// Per node, the view op's shape function when the node moves its input's data into its
    /// output ([`crate::registry::ViewFn`]).
    views: Vec<Option<ViewFn>>,
    /// Whether the pool's other workers spin during a run (see [`Session::set_spin`]).
    spin: bool,
}

type PreparedState = Arc<dyn Any + Send + Sync>;

fn dtype_of(e: &ElemType) -> Option<DType> {
    match e {
        ElemType::DType(d) => Some(*d),
        _ => None,
    }
}

impl Session {
    /// Reads an ONNX file, or a smelt blob that carries a graph ([`crate::blob`]), and loads
    /// its graph.
    pub fn load(path: &Path) -> Result<Session, RuntimeError> {
        Session::load_with(path, Fusions::ALL)
    }

    /// [`Session::load`], choosing the load-time fusions ([`crate::fuse`]; [`Fusions::NONE`]
    /// runs every node of the graph as written: for comparing the two).
    pub fn load_with(path: &Path, fuse: Fusions) -> Result<Session, RuntimeError> {
        let model = if crate::blob::is_blob(path) {
            crate::blob::load_blob_model(path)?
        } else {
            smelt_formats::open(path)?
        };
        Session::from_model_with(&model, path, fuse)
    }

    /// Loads `model`'s graph (`path` names it in errors).
    pub fn from_model(model: &Model, path: &Path) -> Result<Session, RuntimeError> {
        Session::from_model_with(model, path, Fusions::ALL)
    }

    /// [`Session::from_model`], choosing the load-time fusions.
    pub fn from_model_with(model: &Model, path: &Path, fuse: Fusions) -> Result<Session, RuntimeError> {
        let graph = model.graph.as_ref().ok_or_else(|| RuntimeError::NoGraph {
            path: path.display().to_string(),
            format: model.format.name(),
        })?;
        let registry = Registry::new();
        let mut slots: HashMap<String, usize> = HashMap::new();
        let slot_of = |name: &str, slots: &mut HashMap<String, usize>| -> usize {
            let n = slots.len();
            *slots.entry(name.to_string()).or_insert(n)
        };

        let mut consts = Vec::new();
        let mut available: HashSet<String> = HashSet::new();
        for t in &model.tensors {
            if t.dtype == DType::String {
                continue;
            }
            let v = Value::from_tensor(t)?;
            let s = slot_of(&t.name, &mut slots);
            consts.push((s, Arc::new(v)));
            available.insert(t.name.clone());
        }
        let mut inputs = Vec::new();
        for vi in graph.runtime_inputs() {
            let (dtype, shape, dim_names) = match &vi.ty {
                ValueType::Tensor { elem, shape, .. } => {
                    let dims = shape.as_ref().map(|s| {
                        s.iter()
                            .map(|d| if let Dim::Fixed(v) = d { Some(*v as usize) } else { None })
                            .collect::<Vec<_>>()
                    });
                    let names = shape
                        .as_ref()
                        .map(|s| {
                            s.iter()
                                .map(|d| if let Dim::Symbolic(n) = d { n.to_string() } else { String::new() })
                                .collect()
                        })
                        .unwrap_or_default();
                    (dtype_of(elem), dims, names)
                }
                _ => (None, None, Vec::new()),
            };
            let slot = slot_of(vi.name, &mut slots);
            available.insert(vi.name.to_string());
            inputs.push(InputSpec { name: vi.name.to_string(), dtype, shape, dim_names, slot });
        }

        // Nodes, in topological order (ONNX requires file order to be one; a file that is not
        // is sorted rather than refused).
        let protos = graph.nodes();
        let mut pending: Vec<usize> = (0..protos.len()).collect();
        let mut order = Vec::with_capacity(protos.len());
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|&i| {
                let ready = protos[i].input.iter().all(|n| n.is_empty() || available.contains(n));
                if ready {
                    for o in &protos[i].output {
                        available.insert(o.clone());
                    }
                    order.push(i);
                }
                !ready
            });
            if pending.len() == before {
                let i = pending[0];
                let missing: Vec<&String> =
                    protos[i].input.iter().filter(|n| !n.is_empty() && !available.contains(*n)).collect();
                return Err(RuntimeError::Graph(format!(
                    "node '{}' ({}) uses {:?}, which no input, initializer or node produces (or the graph has a cycle)",
                    protos[i].name.as_deref().unwrap_or(""),
                    protos[i].op_type.as_deref().unwrap_or(""),
                    missing
                )));
            }
        }

        let mut nodes = Vec::with_capacity(order.len());
        let mut runs = Vec::with_capacity(order.len());
        let mut unsupported = Vec::new();
        for &i in &order {
            let p = &protos[i];
            let domain = p.domain.as_deref().unwrap_or("");
            let opset = graph.opset_version(domain).unwrap_or(1);
            let op_type = p.op_type.as_deref().unwrap_or("");
            match registry.find(domain, op_type, opset) {
                Some(f) => runs.push(f),
                None => {
                    unsupported.push(UnsupportedOp {
                        node: p.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| format!("#{i}")),
                        op_type: op_type.to_string(),
                        domain: if domain.is_empty() { "ai.onnx".into() } else { domain.to_string() },
                        opset,
                    });
                    continue;
                }
            }
            let mut node = Node::from_proto(p, i, opset)?;
            node.inputs = p.input.iter().map(|n| (!n.is_empty()).then(|| slot_of(n, &mut slots))).collect();
            node.outputs = p.output.iter().map(|n| (!n.is_empty()).then(|| slot_of(n, &mut slots))).collect();
            nodes.push(node);
        }
        if !unsupported.is_empty() {
            return Err(RuntimeError::UnsupportedOps(unsupported));
        }

        let mut shapes: Vec<Option<Vec<usize>>> = vec![None; slots.len()];
        for (s, v) in &consts {
            shapes[*s] = Some(v.shape.clone());
        }
        for i in &inputs {
            shapes[i.slot] = i.shape.as_ref().and_then(|d| d.iter().copied().collect::<Option<Vec<usize>>>());
        }
        crate::infer::infer(&nodes, &mut shapes)?;

        let mut outputs = Vec::new();
        for o in graph.outputs() {
            let s = slots
                .get(o.name)
                .copied()
                .ok_or_else(|| RuntimeError::Graph(format!("graph output '{}' is never produced", o.name)))?;
            outputs.push((o.name.to_string(), s));
        }

        // Memory plan: free each slot after the last node that reads it, unless it is an
        // output. Initializers are shared with the session and cost nothing to drop.
        let keep: HashSet<usize> = outputs.iter().map(|(_, s)| *s).collect();
        let const_values: HashMap<usize, &Value> = consts.iter().map(|(s, v)| (*s, &**v)).collect();
        let (nodes, runs) = crate::fuse::fuse(fuse, &registry, nodes, runs, &keep, &shapes, &const_values);
        drop(const_values);
        let prepared = prepare_nodes(&registry, &nodes, &mut consts, &keep);
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for s in n.inputs.iter().flatten() {
                last_use.insert(*s, i);
            }
        }
        let mut free_after = vec![Vec::new(); nodes.len()];
        for (s, i) in last_use {
            if !keep.contains(&s) {
                free_after[i].push(s);
            }
        }
        // Outputs nothing reads are freed right away, too.
        for (i, n) in nodes.iter().enumerate() {
            for s in n.outputs.iter().flatten() {
                if !keep.contains(s) && !nodes.iter().any(|m| m.inputs.contains(&Some(*s))) {
                    free_after[i].push(*s);
                }
            }
        }
        // View ops whose input 0 dies with them take its data instead of copying it: not an
        // initializer (shared with the session), read once by the node.
        let const_slots: HashSet<usize> = consts.iter().map(|(s, _)| *s).collect();
        let views = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let view = registry.find_view(&n.domain, &n.op_type, n.opset)?;
                let s = n.inputs.first().copied().flatten()?;
                let once = n.inputs.iter().filter(|x| **x == Some(s)).count() == 1;
                (once && !const_slots.contains(&s) && free_after[i].contains(&s)).then_some(view)
            })
            .collect();
        Ok(Session {
            nodes,
            runs,
            slot_count: slots.len(),
            consts,
            inputs,
            outputs,
            free_after,
            prepared,
            views,
            spin: true,
        })
    }

    /// Whether, while a run is in progress, the pool's other workers wait for work by
    /// spinning (the default, as ONNX Runtime's intra-op threads do) instead of going to
    /// sleep between parallel regions. Spinning keeps every core busy for the length of a run
    /// but saves the wake-up of a sleeping worker at each of the few hundred parallel regions
    /// of a step (int8 decode took 10–18% less time in alternating runs). No result depends
    /// on it.
    pub fn set_spin(&mut self, on: bool) {
        self.spin = on;
    }

    /// The inputs a caller must feed.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// Output names, in graph order.
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of nodes whose op prepared state when the session loaded (a quantized weight
    /// repacked for the kernels).
    pub fn prepared_nodes(&self) -> usize {
        self.prepared.iter().flatten().count()
    }

    fn expected(&self) -> String {
        if self.inputs.is_empty() {
            return "no inputs".into();
        }
        self.inputs.iter().map(InputSpec::describe).collect::<Vec<_>>().join(", ")
    }

    /// Runs the graph on named inputs; returns the outputs in graph order.
    pub fn run(&self, feeds: Vec<(String, Value)>) -> Result<Vec<(String, Value)>, RuntimeError> {
        self.run_with_stats(feeds).map(|(out, _)| out)
    }

    /// [`Session::run`], also reporting what the memory plan kept alive.
    pub fn run_with_stats(
        &self,
        feeds: Vec<(String, Value)>,
    ) -> Result<(Vec<(String, Value)>, RunStats), RuntimeError> {
        self.run_inner(feeds, None)
    }

    /// [`Session::run`], also adding each node's wall time to `times` (one entry per node, in
    /// [`Session::node_ops`] order; `times` is resized to the node count first).
    pub fn run_profiled(
        &self,
        feeds: Vec<(String, Value)>,
        times: &mut Vec<std::time::Duration>,
    ) -> Result<Vec<(String, Value)>, RuntimeError> {
        times.resize(self.nodes.len(), std::time::Duration::ZERO);
        self.run_inner(feeds, Some(times)).map(|(out, _)| out)
    }

    /// Each node's op type (with its domain when not the default one), in execution order.
    pub fn node_ops(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| {
                if n.domain.is_empty() || n.domain == "ai.onnx" {
                    n.op_type.clone()
                } else {
                    format!("{}.{}", n.domain, n.op_type)
                }
            })
            .collect()
    }

    /// Each node's name (`#<index>` for an unnamed one), in execution order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Runs the graph on one of the pool's threads: the kernels' parallel regions then start
    /// from a worker, which takes a share of the work itself and finds the other workers
    /// still spinning from the last region, instead of blocking the caller and waking the
    /// pool a few hundred times a run.
    fn run_inner(
        &self,
        feeds: Vec<(String, Value)>,
        times: Option<&mut Vec<std::time::Duration>>,
    ) -> Result<(Vec<(String, Value)>, RunStats), RuntimeError> {
        if rayon::current_thread_index().is_some() {
            return self.run_here(feeds, times);
        }
        if !self.spin || rayon::current_num_threads() == 1 {
            return rayon::scope(|_| self.run_here(feeds, times));
        }
        let done = AtomicBool::new(false);
        rayon::scope(|s| {
            // One spinner per other worker: it runs whatever the run's parallel regions queue
            // (`yield_now` takes a pending job) and otherwise polls, until the run is over or
            // it has found nothing to do for `SPIN_IDLE`. A spinner that lands on the run's
            // own thread (which can pick up its queued jobs while it waits inside a region)
            // returns at once: it would never see the end. The idle limit matters when runs
            // share the pool: a worker whose own run waits inside a region may pick up another
            // run's spinner, and two such workers could otherwise wait for each other's runs.
            let home = rayon::current_thread_index();
            for _ in 1..rayon::current_num_threads() {
                let done = &done;
                s.spawn(move |_| {
                    if rayon::current_thread_index() == home {
                        return;
                    }
                    let mut busy = std::time::Instant::now();
                    while !done.load(Ordering::Acquire) {
                        if rayon::yield_now() == Some(rayon::Yield::Executed) {
                            busy = std::time::Instant::now();
                        } else if busy.elapsed() > SPIN_IDLE {
                            return;
                        } else {
                            // A pause between looks at the queues: each look touches the
                            // other workers' deques, which the run's thread is pushing to.
                            for _ in 0..SPIN_PAUSES {
                                std::hint::spin_loop();
                            }
                        }
                    }
                });
            }
            // Set when the run ends, by returning or by unwinding: the scope waits for the
            // spinners.
            let _end = SetOnDrop(&done);
            self.run_here(feeds, times)
        })
    }

    fn run_here(
        &self,
        feeds: Vec<(String, Value)>,
        mut times: Option<&mut Vec<std::time::Duration>>,
    ) -> Result<(Vec<(String, Value)>, RunStats), RuntimeError> {
        let mut stats = RunStats::default();
        let mut is_const = vec![false; self.slot_count];
        for (s, _) in &self.consts {
            is_const[*s] = true;
        }
        let mut values: Vec<Option<Arc<Value>>> = vec![None; self.slot_count];
        for (s, v) in &self.consts {
            values[*s] = Some(v.clone());
        }
        let mut given: HashSet<String> = HashSet::new();
        for (name, v) in feeds {
            let spec = self
                .inputs
                .iter()
                .find(|i| i.name == name)
                .ok_or_else(|| RuntimeError::ExtraInput { name: name.clone(), expected: self.expected() })?;
            if let Some(d) = spec.dtype {
                if d != v.dtype() {
                    return Err(RuntimeError::InputMismatch {
                        name,
                        reason: format!("dtype {} given, {} declared", v.dtype(), d),
                        expected: self.expected(),
                    });
                }
            }
            if !shape_within_cap(&v.shape) {
                return Err(RuntimeError::InputMismatch {
                    name,
                    reason: format!(
                        "shape {:?} exceeds the runner's cap of {} elements (zero dimensions counted as one)",
                        v.shape,
                        value_element_cap()
                    ),
                    expected: self.expected(),
                });
            }
            if let Some(shape) = &spec.shape {
                let fits = shape.len() == v.shape.len()
                    && shape.iter().zip(&v.shape).all(|(d, &g)| d.is_none_or(|d| d == g));
                if !fits {
                    return Err(RuntimeError::InputMismatch {
                        name,
                        reason: format!("shape {:?} given", v.shape),
                        expected: self.expected(),
                    });
                }
            }
            values[spec.slot] = Some(Arc::new(v));
            given.insert(name);
        }
        for spec in &self.inputs {
            if !given.contains(&spec.name) {
                return Err(RuntimeError::MissingInput {
                    name: spec.name.clone(),
                    expected: self.expected(),
                });
            }
        }
        // Values alive that are not initializers, kept up to date as slots fill and empty (a
        // scan of every slot after each node cost a few hundred µs per run).
        let mut live = values.iter().zip(&is_const).filter(|(v, c)| v.is_some() && !**c).count();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut ins = Vec::with_capacity(node.inputs.len());
            for s in &node.inputs {
                match s {
                    None => ins.push(None),
                    Some(s) => ins.push(Some(values[*s].as_deref().ok_or_else(|| {
                        RuntimeError::Graph(format!(
                            "node '{}' ({}): an input was freed or never set",
                            node.name, node.op_type
                        ))
                    })?)),
                }
            }
            let ctx = OpCtx { node, inputs: ins, prepared: self.prepared[i].as_deref() };
            let started = times.is_some().then(std::time::Instant::now);
            // Ops validate their inputs and return errors; should one still panic on a hostile
            // model, the panic becomes an error naming the node instead of ending the process.
            let internal = || RuntimeError::Op {
                node: node.name.clone(),
                op_type: node.op_type.clone(),
                reason: "internal error while running this node (its inputs or attributes are inconsistent)"
                    .into(),
            };
            let outs = match self.views[i] {
                Some(view) => {
                    let shape = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| view(&ctx)))
                        .map_err(|_| internal())??;
                    drop(ctx);
                    // Input 0 is read by no later node (checked at load): its data moves.
                    let s = node.inputs[0].expect("a view node's input 0 is set");
                    let x = values[s].take().expect("read above");
                    if !is_const[s] {
                        live -= 1;
                    }
                    let mut v = Arc::try_unwrap(x).unwrap_or_else(|a| (*a).clone());
                    v.shape = shape;
                    vec![v]
                }
                None => {
                    let outs =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.runs[i])(&ctx)))
                            .map_err(|_| internal())??;
                    drop(ctx);
                    outs
                }
            };
            if let (Some(t), Some(s)) = (times.as_deref_mut(), started) {
                t[i] += s.elapsed();
            }
            for v in &outs {
                if !shape_within_cap(&v.shape) {
                    return Err(RuntimeError::Op {
                        node: node.name.clone(),
                        op_type: node.op_type.clone(),
                        reason: format!(
                            "output of shape {:?} exceeds the runner's cap of {} elements \
                             (zero dimensions counted as one)",
                            v.shape,
                            value_element_cap()
                        ),
                    });
                }
            }
            if outs.len() < node.outputs.iter().filter(|o| o.is_some()).count().min(node.outputs.len())
                && outs.len() < node.outputs.len()
            {
                // An op may return fewer outputs than declared only when the rest are unused.
                if node.outputs[outs.len()..].iter().any(Option::is_some) {
                    return Err(RuntimeError::Graph(format!(
                        "node '{}' ({}): produced {} outputs, the graph uses {}",
                        node.name,
                        node.op_type,
                        outs.len(),
                        node.outputs.len()
                    )));
                }
            }
            for (slot, v) in node.outputs.iter().zip(outs) {
                if let Some(s) = slot {
                    if values[*s].replace(Arc::new(v)).is_none() && !is_const[*s] {
                        live += 1;
                    }
                }
            }
            for s in &self.free_after[i] {
                if values[*s].take().is_some() && !is_const[*s] {
                    live -= 1;
                }
            }
            stats.peak_live_values = stats.peak_live_values.max(live);
            stats.computed_values += node.outputs.iter().flatten().count();
        }
        let mut out = Vec::with_capacity(self.outputs.len());
        for (o, (name, s)) in self.outputs.iter().enumerate() {
            // The slot's last output moves its value out (a copy only when another output or
            // the session's initializers still share it): cloning every output cost a copy of
            // the logits and the KV cache per run.
            let last = !self.outputs[o + 1..].iter().any(|(_, t)| t == s);
            let v = if last { values[*s].take() } else { values[*s].clone() };
            let v = v.ok_or_else(|| RuntimeError::Graph(format!("output '{name}' was not computed")))?;
            out.push((name.clone(), Arc::try_unwrap(v).unwrap_or_else(|a| (*a).clone())));
        }
        Ok((out, stats))
    }
}

/// Runs every op's load-time preparation on the initializers it reads (never on a slot a node
/// overwrites), then releases each initializer whose every read is through an input its
/// node's preparation replaces (and that is not a graph output). A preparation that panics
/// on a hostile model counts as none: the op then reports the problem when it runs.
fn prepare_nodes(
    registry: &Registry,
    nodes: &[Node],
    consts: &mut [(usize, Arc<Value>)],
    keep: &HashSet<usize>,
) -> Vec<Option<PreparedState>> {
    let produced: HashSet<usize> = nodes.iter().flat_map(|n| n.outputs.iter().flatten().copied()).collect();
    let by_slot: HashMap<usize, Arc<Value>> =
        consts.iter().filter(|(s, _)| !produced.contains(s)).map(|(s, v)| (*s, v.clone())).collect();
    let (mut reads, mut replaced) = (HashMap::<usize, usize>::new(), HashMap::<usize, usize>::new());
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        for s in node.inputs.iter().flatten() {
            *reads.entry(*s).or_default() += 1;
        }
        let prepared = registry.find_prepare(&node.domain, &node.op_type, node.opset).and_then(|prepare| {
            let inputs = node.inputs.iter().map(|s| s.and_then(|s| by_slot.get(&s).map(|v| &**v))).collect();
            let ctx = OpCtx { node, inputs, prepared: None };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prepare(&ctx))).ok().flatten()
        });
        if let Some(p) = &prepared {
            for s in p.replaces_inputs.iter().filter_map(|&i| node.inputs.get(i).copied().flatten()) {
                *replaced.entry(s).or_default() += 1;
            }
        }
        out.push(prepared.map(|p| p.state));
    }
    for (s, v) in consts.iter_mut() {
        if !keep.contains(s) && replaced.get(s).is_some_and(|r| reads.get(s) == Some(r)) {
            *v = Arc::new(Value::new(vec![0], Data::U8(Vec::new())));
        }
    }
    out
}

/// `pause` hints between a spinning worker's looks for work (one look per pause ran slower
/// on int4 prefill in some runs; with 64, spinning beat sleeping in 11 of 12 in-process
/// comparisons, the other int4 prefill, 4% slower, within that pair's spread).
const SPIN_PAUSES: usize = 64;

/// How long a spinning worker looks for work without finding any before it leaves the run to
/// rayon's usual sleep (longer than the gaps between a step's parallel regions).
const SPIN_IDLE: std::time::Duration = std::time::Duration::from_millis(2);

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}
