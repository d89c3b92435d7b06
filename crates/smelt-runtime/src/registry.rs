//! The op registry: implementations keyed by (domain, op_type) with the opset range each one
//! covers. Loading a model looks every node up here before anything runs, so an unsupported op
//! is reported with its domain and opset up front.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::RuntimeError;
use crate::node::OpCtx;
use crate::value::Value;

/// An op implementation.
pub type OpFn = fn(&OpCtx<'_>) -> Result<Vec<Value>, RuntimeError>;

/// Work an op does once, when the session loads: its context holds the node and, as inputs,
/// only the initializers (a computed input is `None`). Returns `None` when there is nothing
/// to prepare — the op then works from its inputs on every run, and reports any problem then.
pub type PrepareFn = fn(&OpCtx<'_>) -> Option<Prepared>;

/// The output shape of a view op (Reshape, Squeeze, Unsqueeze, Flatten, Identity), whose
/// output is input 0's data unchanged under a new shape. When input 0 is read by no later
/// node, the session moves its data into the output instead of running the op (which copies).
pub type ViewFn = fn(&OpCtx<'_>) -> Result<Vec<usize>, RuntimeError>;

/// What a [`PrepareFn`] made, handed to the op on every run ([`OpCtx::prepared`]).
pub struct Prepared {
    /// The op's own state (e.g. a weight repacked for the kernels).
    pub state: Arc<dyn Any + Send + Sync>,
    /// Input indices the op no longer reads when it has `state`: an initializer that only
    /// such inputs use is released after loading.
    pub replaces_inputs: Vec<usize>,
}

/// The default ONNX domain's canonical name in the registry.
pub const DEFAULT_DOMAIN: &str = "";
/// Microsoft's contrib-op domain (ONNX Runtime).
pub const MS_DOMAIN: &str = "com.microsoft";
/// The domain of the nodes smelt's load-time fusion makes ([`crate::fuse`]); not listed by
/// [`Registry::list`].
pub const FUSED_DOMAIN: &str = "smelt.fused";

struct Entry {
    since: i64,
    until: i64,
    run: OpFn,
    prepare: Option<PrepareFn>,
    view: Option<ViewFn>,
}

/// Op implementations by (domain, op_type, opset range).
pub struct Registry {
    ops: HashMap<(&'static str, &'static str), Vec<Entry>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry with every op the runner implements.
    pub fn new() -> Registry {
        let mut r = Registry { ops: HashMap::new() };
        crate::ops::register_all(&mut r);
        r
    }

    /// Registers `run` for `op_type` in `domain` for opsets `since..=until`.
    pub fn add(&mut self, domain: &'static str, op_type: &'static str, since: i64, until: i64, run: OpFn) {
        self.ops.entry((domain, op_type)).or_default().push(Entry {
            since,
            until,
            run,
            prepare: None,
            view: None,
        });
    }

    /// [`Registry::add`] with a load-time [`PrepareFn`].
    pub fn add_prepared(
        &mut self,
        domain: &'static str,
        op_type: &'static str,
        since: i64,
        until: i64,
        run: OpFn,
        prepare: PrepareFn,
    ) {
        self.ops.entry((domain, op_type)).or_default().push(Entry {
            since,
            until,
            run,
            prepare: Some(prepare),
            view: None,
        });
    }

    /// Registers a view op for every opset: `run` copies input 0's data under the shape
    /// `view` gives, which the session uses instead to move the data when it can.
    pub fn add_view(&mut self, domain: &'static str, op_type: &'static str, run: OpFn, view: ViewFn) {
        self.ops.entry((domain, op_type)).or_default().push(Entry {
            since: 1,
            until: i64::MAX,
            run,
            prepare: None,
            view: Some(view),
        });
    }

    /// The [`ViewFn`] of `op_type` in `domain` at `opset`, if it is a view op.
    pub fn find_view(&self, domain: &str, op_type: &str, opset: i64) -> Option<ViewFn> {
        let domain = if domain == "ai.onnx" { DEFAULT_DOMAIN } else { domain };
        self.ops.get(&(domain, op_type))?.iter().find(|e| e.since <= opset && opset <= e.until)?.view
    }

    /// Registers `run` for a default-domain op for every opset.
    pub fn onnx(&mut self, op_type: &'static str, run: OpFn) {
        self.add(DEFAULT_DOMAIN, op_type, 1, i64::MAX, run);
    }

    /// The implementation of `op_type` in `domain` at `opset`.
    pub fn find(&self, domain: &str, op_type: &str, opset: i64) -> Option<OpFn> {
        self.entry(domain, op_type, opset).map(|(run, _)| run)
    }

    /// The load-time preparation of `op_type` in `domain` at `opset`, if it has one.
    pub fn find_prepare(&self, domain: &str, op_type: &str, opset: i64) -> Option<PrepareFn> {
        self.entry(domain, op_type, opset).and_then(|(_, prepare)| prepare)
    }

    fn entry(&self, domain: &str, op_type: &str, opset: i64) -> Option<(OpFn, Option<PrepareFn>)> {
        let domain = if domain == "ai.onnx" { DEFAULT_DOMAIN } else { domain };
        self.ops
            .get(&(domain, op_type))?
            .iter()
            .find(|e| e.since <= opset && opset <= e.until)
            .map(|e| (e.run, e.prepare))
    }

    /// Every registered (domain, op_type) a model may use, sorted.
    pub fn list(&self) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = self.ops.keys().copied().filter(|(d, _)| *d != FUSED_DOMAIN).collect();
        v.sort();
        v
    }
}
