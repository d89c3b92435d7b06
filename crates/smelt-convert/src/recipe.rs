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
        Ok(Recipe {
            quant,
            format: file.format,
            options,
            allow_nonfinite: o.allow_nonfinite.unwrap_or(false),
            keep_1d: file.defaults.keep_1d.unwrap_or(true),
            embeddings,
            output,
            rules,
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
    fn cli_override_wins() {
        let r = Recipe::parse("quant = \"int8\"", "r.toml", Some("nf4"), &|o| o.double_quant = true).unwrap();
        assert_eq!(r.quant, Some(Scheme::Nf4 { double_quant: true }));
    }
}
