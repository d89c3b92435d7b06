//! Recipe files: the TOML a build pipeline checks in next to its model, saying which scheme
//! each tensor gets. The format is documented in docs/recipe.md; unknown keys are errors, so a
//! typo never silently changes a conversion.

use std::path::Path;

use serde::Deserialize;

use crate::scheme::{Scheme, SchemeError, SchemeOptions, TernaryPacking};

/// A recipe that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file could not be read.
    #[error("{path}: cannot read recipe: {source}")]
    Io {
        /// Recipe path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type (the message has line and
    /// column).
    #[error("{path}: {message}")]
    Toml {
        /// Recipe path.
        path: String,
        /// The parser's message, with position.
        message: String,
    },
    /// A scheme name or option is wrong.
    #[error("{path}: {field}: {source}")]
    Scheme {
        /// Recipe path.
        path: String,
        /// Which field (`quant`, `rules[2].scheme`, ...).
        field: String,
        /// Cause.
        source: SchemeError,
    },
    /// A rule has neither or both of `match` and `regex`, or a bad regex.
    #[error("{path}: rules[{index}]: {message}")]
    Rule {
        /// Recipe path.
        path: String,
        /// Index of the rule.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    quant: Option<String>,
    format: Option<String>,
    #[serde(default)]
    options: OptionsFile,
    #[serde(default)]
    defaults: DefaultsFile,
    #[serde(default)]
    rules: Vec<RuleFile>,
    validate: Option<ValidateFile>,
}

/// `[validate]`: thresholds for `smelt validate --recipe`, with per-output tables under
/// `[validate.outputs.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateFile {
    max_abs: Option<f64>,
    min_cosine: Option<f64>,
    min_top1: Option<f64>,
    #[serde(default)]
    outputs: std::collections::BTreeMap<String, ThresholdsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    max_abs: Option<f64>,
    min_cosine: Option<f64>,
    min_top1: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsFile {
    group_size: Option<u32>,
    symmetric: Option<bool>,
    per_channel: Option<bool>,
    double_quant: Option<bool>,
    ternary_packing: Option<String>,
    allow_nonfinite: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    keep_1d: Option<bool>,
    embeddings: Option<String>,
    output: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(rename = "match")]
    glob: Option<String>,
    regex: Option<String>,
    scheme: String,
}

/// How a rule matches tensor names.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// A glob: `*` matches any run of characters (dots included), `?` one character.
    Glob(String),
    /// A regular expression (unanchored: use `^…$` to match whole names).
    Regex(regex::Regex),
}

impl Matcher {
    /// True when `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        match self {
            Matcher::Glob(g) => glob_match(g.as_bytes(), name.as_bytes()),
            Matcher::Regex(r) => r.is_match(name),
        }
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        match self {
            Matcher::Glob(g) => g,
            Matcher::Regex(r) => r.as_str(),
        }
    }
}

/// Iterative glob matching with backtracking over the last `*` (linear in practice, no
/// recursion).
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

/// One name rule: tensors it matches get `scheme`. The first matching rule wins.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Which names.
    pub matcher: Matcher,
    /// What they get.
    pub scheme: Scheme,
}

/// What to do with token embeddings or the output head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// The recipe's main scheme, like any other weight.
    Same,
    /// A specific scheme (including `keep`).
    Scheme(Scheme),
}

/// Thresholds of `smelt validate`; `None` means the metric is not checked.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Thresholds {
    /// Largest allowed max absolute error.
    pub max_abs: Option<f64>,
    /// Smallest allowed cosine similarity.
    pub min_cosine: Option<f64>,
    /// Smallest allowed top-1 agreement of logits outputs (0..=1).
    pub min_top1: Option<f64>,
}

impl Thresholds {
    /// Each threshold from `over` where it has one, else from `self`.
    pub fn overridden_by(self, over: Thresholds) -> Thresholds {
        Thresholds {
            max_abs: over.max_abs.or(self.max_abs),
            min_cosine: over.min_cosine.or(self.min_cosine),
            min_top1: over.min_top1.or(self.min_top1),
        }
    }
}

/// The recipe's `[validate]` table: thresholds for every output, and per-output ones that
/// replace them metric by metric.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidateRecipe {
    /// For every output.
    pub all: Thresholds,
    /// Per output name (`[validate.outputs.NAME]`), sorted by name.
    pub outputs: Vec<(String, Thresholds)>,
}

impl ValidateRecipe {
    /// The thresholds that apply to output `name`.
    pub fn for_output(&self, name: &str) -> Thresholds {
        match self.outputs.iter().find(|(n, _)| n == name) {
            Some((_, t)) => self.all.overridden_by(*t),
            None => self.all,
        }
    }
}

/// Checks one table's thresholds are in range (`field` names the table in errors).
fn thresholds(
    origin: &str,
    field: &str,
    max_abs: Option<f64>,
    min_cosine: Option<f64>,
    min_top1: Option<f64>,
) -> Result<Thresholds, RecipeError> {
    let bad = |key: &str, v: f64, range: &str| RecipeError::Toml {
        path: origin.to_string(),
        message: format!("{field}.{key}: {v} is not {range}"),
    };
    if let Some(v) = max_abs.filter(|v| v.is_nan() || *v < 0.0) {
        return Err(bad("max_abs", v, "a number >= 0"));
    }
    if let Some(v) = min_cosine.filter(|v| !(-1.0..=1.0).contains(v)) {
        return Err(bad("min_cosine", v, "in -1..=1"));
    }
    if let Some(v) = min_top1.filter(|v| !(0.0..=1.0).contains(v)) {
        return Err(bad("min_top1", v, "in 0..=1"));
    }
    Ok(Thresholds { max_abs, min_cosine, min_top1 })
}

/// A parsed recipe: the main scheme, options, defaults and rules.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The scheme for weight matrices not matched by a rule (`None`: keep everything unless a
    /// rule says otherwise — a dtype-only or rules-only recipe).
    pub quant: Option<Scheme>,
    /// Output format named by the recipe (`blob`, `gguf`, `safetensors`), if any.
    pub format: Option<String>,
    /// Scheme options.
    pub options: SchemeOptions,
    /// Refuse NaN/Inf weights unless true.
    pub allow_nonfinite: bool,
    /// Keep 1-D tensors (norms, biases) and scalars as they are.
    pub keep_1d: bool,
    /// Token embeddings.
    pub embeddings: Special,
    /// Output head.
    pub output: Special,
    /// Name rules, first match wins.
    pub rules: Vec<Rule>,
    /// Thresholds for `smelt validate --recipe` (`[validate]`; all `None` when absent).
    pub validate: ValidateRecipe,
    /// The recipe text as given (recorded in outputs' provenance), empty when none.
    pub source: String,
}

impl Recipe {
    /// The recipe used when no file is given: `quant` as given, default options.
    pub fn with_quant(quant: Option<Scheme>) -> Recipe {
        Recipe {
            quant,
            format: None,
            options: SchemeOptions::default(),
            allow_nonfinite: false,
            keep_1d: true,
            embeddings: Special::Same,
            output: Special::Same,
            rules: Vec::new(),
            validate: ValidateRecipe::default(),
            source: String::new(),
        }
    }

    /// Reads a recipe file. `quant_override` (the CLI's `--quant`) replaces the file's `quant`,
    /// and `opts_override` adjusts the options after the file's are applied.
    pub fn from_file(
        path: &Path,
        quant_override: Option<&str>,
        opts_override: &dyn Fn(&mut SchemeOptions),
    ) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RecipeError::Io { path: path.display().to_string(), source })?;
        Recipe::parse(&text, &path.display().to_string(), quant_override, opts_override)
    }

    /// Parses recipe text (`origin` names it in errors).
    pub fn parse(
        text: &str,
        origin: &str,
        quant_override: Option<&str>,
        opts_override: &dyn Fn(&mut SchemeOptions),
    ) -> Result<Recipe, RecipeError> {
        let file: RecipeFile = toml::from_str(text)
            .map_err(|e| RecipeError::Toml { path: origin.to_string(), message: e.to_string() })?;
        let mut options = SchemeOptions::default();
        let o = &file.options;
        if let Some(g) = o.group_size {
            options.group = g;
        }
        if let Some(v) = o.symmetric {
            options.symmetric = v;
        }
        if let Some(v) = o.per_channel {
            options.per_channel = v;
        }
        if let Some(v) = o.double_quant {
            options.double_quant = v;
        }
        if let Some(p) = &o.ternary_packing {
            options.ternary_packing = match p.as_str() {
                "2bit" => TernaryPacking::TwoBit,
                "base3" => TernaryPacking::Base3,
                other => {
                    return Err(RecipeError::Toml {
                        path: origin.to_string(),
                        message: format!("options.ternary_packing: '{other}' is not \"2bit\" or \"base3\""),
                    })
                }
            };
        }
        opts_override(&mut options);
        let scheme = |field: &str, name: &str| {
            Scheme::parse(name, &options).map_err(|source| RecipeError::Scheme {
                path: origin.to_string(),
                field: field.to_string(),
                source,
            })
        };
        let quant = match quant_override.or(file.quant.as_deref()) {
            Some(q) => Some(scheme("quant", q)?),
            None => None,
        };
        let special = |field: &str, v: &Option<String>| -> Result<Special, RecipeError> {
            match v.as_deref() {
                None | Some("same") => Ok(Special::Same),
                Some(name) => Ok(Special::Scheme(scheme(field, name)?)),
            }
        };
        let embeddings = special("defaults.embeddings", &file.defaults.embeddings)?;
        let output = special("defaults.output", &file.defaults.output)?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for (index, r) in file.rules.iter().enumerate() {
            let matcher = match (&r.glob, &r.regex) {
                (Some(g), None) => Matcher::Glob(g.clone()),
                (None, Some(re)) => Matcher::Regex(regex::Regex::new(re).map_err(|e| RecipeError::Rule {
                    path: origin.to_string(),
                    index,
                    message: format!("bad regex: {e}"),
                })?),
                _ => {
                    return Err(RecipeError::Rule {
                        path: origin.to_string(),
                        index,
                        message: "give exactly one of `match` (a glob) and `regex`".into(),
                    })
                }
            };
            rules.push(Rule { matcher, scheme: scheme(&format!("rules[{index}].scheme"), &r.scheme)? });
        }
        let validate = match &file.validate {
            None => ValidateRecipe::default(),
            Some(v) => {
                let all = thresholds(origin, "validate", v.max_abs, v.min_cosine, v.min_top1)?;
                let outputs = v
                    .outputs
                    .iter()
                    .map(|(name, t)| {
                        let field = format!("validate.outputs.{name}");
                        Ok((name.clone(), thresholds(origin, &field, t.max_abs, t.min_cosine, t.min_top1)?))
                    })
                    .collect::<Result<_, RecipeError>>()?;
                ValidateRecipe { all, outputs }
            }
        };
        Ok(Recipe {
            quant,
            format: file.format,
            options,
            allow_nonfinite: o.allow_nonfinite.unwrap_or(false),
            keep_1d: file.defaults.keep_1d.unwrap_or(true),
            embeddings,
            output,
            rules,
            validate,
            source: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smelt_tensor::DType;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(text, "r.toml", None, &|_| {})
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"model.layers.*.mlp.*", b"model.layers.10.mlp.up_proj.weight"));
        assert!(glob_match(b"*norm*", b"model.norm.weight"));
        assert!(glob_match(b"blk.?.attn_q.weight", b"blk.3.attn_q.weight"));
        assert!(!glob_match(b"blk.?.attn_q.weight", b"blk.13.attn_q.weight"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a*b", b"acd"));
    }

    #[test]
    fn full_recipe() {
        let r = parse(
            r#"
quant = "int4"
[options]
group_size = 64
symmetric = false
[defaults]
embeddings = "keep"
output = "q8_0"
[[rules]]
match = "*.mlp.down_proj.weight"
scheme = "q8_0"
[[rules]]
regex = "^lm_head"
scheme = "f16"
"#,
        )
        .unwrap();
        assert_eq!(r.quant, Some(Scheme::Int4 { group: 64, symmetric: false }));
        assert_eq!(r.embeddings, Special::Scheme(Scheme::Keep));
        assert_eq!(r.output, Special::Scheme(Scheme::Ggml(DType::Q8_0)));
        assert_eq!(r.rules.len(), 2);
        assert!(r.rules[1].matcher.is_match("lm_head.weight"));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(matches!(parse("quant = 3"), Err(RecipeError::Toml { .. })));
        assert!(matches!(parse("qaunt = \"int8\""), Err(RecipeError::Toml { .. })));
        let e = parse("quant = \"int9\"").unwrap_err();
        assert!(matches!(&e, RecipeError::Scheme { field, .. } if field == "quant"));
        let e = parse("[[rules]]\nscheme = \"f16\"").unwrap_err();
        assert!(matches!(e, RecipeError::Rule { index: 0, .. }));
        let e = parse("[[rules]]\nregex = \"(\"\nscheme = \"f16\"").unwrap_err();
        assert!(matches!(e, RecipeError::Rule { index: 0, .. }));
    }

    #[test]
    fn validate_per_output_thresholds_override_the_table() {
        let r = parse(
            "quant = \"int8\"\n[validate]\nmax_abs = 0.5\nmin_cosine = 0.99\n[validate.outputs.logits]\nmin_top1 = 0.9\nmax_abs = 1\n",
        )
        .unwrap();
        assert_eq!(r.validate.all, Thresholds { max_abs: Some(0.5), min_cosine: Some(0.99), min_top1: None });
        assert_eq!(
            r.validate.for_output("logits"),
            Thresholds { max_abs: Some(1.0), min_cosine: Some(0.99), min_top1: Some(0.9) }
        );
        assert_eq!(r.validate.for_output("hidden"), r.validate.all);
        assert_eq!(parse("quant = \"int8\"").unwrap().validate, ValidateRecipe::default());
    }

    #[test]
    fn validate_errors_name_the_key() {
        let e = parse("[validate]\nmax_abz = 0.1").unwrap_err();
        assert!(
            matches!(&e, RecipeError::Toml { message, .. } if message.contains("max_abz") && message.contains("line 2")),
            "{e}"
        );
        let e = parse("[validate.outputs.logits]\nmin_top = 0.1").unwrap_err();
        assert!(matches!(&e, RecipeError::Toml { message, .. } if message.contains("min_top")), "{e}");
        let e = parse("[validate]\nmin_top1 = 1.5").unwrap_err();
        assert!(
            matches!(&e, RecipeError::Toml { message, .. } if message.contains("validate.min_top1")),
            "{e}"
        );
        let e = parse("[validate.outputs.y]\nmax_abs = -1").unwrap_err();
        assert!(
            matches!(&e, RecipeError::Toml { message, .. } if message.contains("validate.outputs.y.max_abs")),
            "{e}"
        );
        assert!(matches!(parse("[validate]\nmin_cosine = \"high\""), Err(RecipeError::Toml { .. })));
    }

    #[test]
    fn cli_override_wins() {
        let r = Recipe::parse("quant = \"int8\"", "r.toml", Some("nf4"), &|o| o.double_quant = true).unwrap();
        assert_eq!(r.quant, Some(Scheme::Nf4 { double_quant: true }));
    }
}
