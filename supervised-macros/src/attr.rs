//! Parsing the attribute's arguments: one setter per key, each rejecting a
//! duplicate, then [`crate::valid`] checks the rules that span several keys.

use std::time::Duration;

use proc_macro2::{Ident, Span};
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Lit, LitBool, LitInt, LitStr, Path};

/// Every key the attribute accepts, in the order the docs list them: the
/// one list behind the "unknown key" error and the fuzz corpus.
pub(crate) const KEYS: &[&str] = &[
    "name",
    "tick",
    "stale_after",
    "initial_backoff",
    "max_backoff",
    "jitter",
    "stop_timeout",
    "max_restarts",
    "within",
    "on_stall",
    "lease",
    "lease_ttl",
    "keep",
    "crate",
];

/// `KEYS` as the error message lists them: "`name`, `tick`, ...".
fn keys_list() -> String {
    let quoted: Vec<String> = KEYS.iter().map(|key| format!("`{key}`")).collect();
    quoted.join(", ")
}

/// The key of `meta` as written (empty for a path that is not one ident,
/// which no key is).
fn key_name(meta: &ParseNestedMeta<'_>) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// A value together with the span of the literal it came from.
#[derive(Clone)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// The parsed arguments of `#[supervised(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) tick: Option<Spanned<Duration>>,
    /// `tick = "none"`: a loop that waits on events, with no period, says
    /// so on purpose (no staleness check, and no warning that it has none).
    pub(crate) no_tick: bool,
    pub(crate) stale_after: Option<Spanned<Duration>>,
    pub(crate) initial_backoff: Option<Spanned<Duration>>,
    pub(crate) max_backoff: Option<Spanned<Duration>>,
    pub(crate) jitter: Option<Spanned<bool>>,
    pub(crate) stop_timeout: Option<Spanned<Duration>>,
    pub(crate) max_restarts: Option<Spanned<u32>>,
    pub(crate) within: Option<Spanned<Duration>>,
    /// `true` for `on_stall = "restart"`, `false` for `"report"`.
    pub(crate) restart_on_stall: Option<Spanned<bool>>,
    pub(crate) lease: Option<Spanned<String>>,
    pub(crate) lease_ttl: Option<Spanned<Duration>>,
    /// The arguments (`self` too) moved once into the supervisor's frame
    /// and lent to each run as `&mut`, in the order written.
    pub(crate) keep: Option<Spanned<Vec<Ident>>>,
    pub(crate) krate: Option<Spanned<Path>>,
}

impl Args {
    /// `tick = "60s"`, or `tick = "none"` for a loop that waits on events.
    fn set_tick(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if self.tick.is_some() || self.no_tick {
            return Err(meta.error("duplicate `tick` key: give it once"));
        }
        let lit = string(
            meta,
            "a duration such as `\"60s\"`, or `\"none\"` for a loop that waits on events",
        )?;
        if lit.value() == "none" {
            self.no_tick = true;
        } else {
            self.tick = Some(duration_of("tick", &lit, false)?);
        }
        Ok(())
    }

    /// The names in `keep(...)`; empty without the key.
    pub(crate) fn kept(&self) -> &[Ident] {
        self.keep.as_ref().map_or(&[], |keep| &keep.value)
    }

    /// Parses one `key = value` pair (or a bare `jitter`, or `keep(..)`).
    pub(crate) fn parse_one(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        match key_name(&meta).as_str() {
            "name" => set(&mut self.name, &meta, parse_name),
            "tick" => self.set_tick(&meta),
            "stale_after" => set(&mut self.stale_after, &meta, parse_duration),
            "initial_backoff" => set(&mut self.initial_backoff, &meta, parse_duration),
            "max_backoff" => set(&mut self.max_backoff, &meta, parse_duration),
            "stop_timeout" | "grace" => set_stop_timeout(&mut self.stop_timeout, &meta),
            "within" => set(&mut self.within, &meta, parse_duration),
            "max_restarts" => set(&mut self.max_restarts, &meta, parse_count),
            "jitter" => set(&mut self.jitter, &meta, parse_flag),
            "on_stall" => set(&mut self.restart_on_stall, &meta, parse_on_stall),
            "lease" => set(&mut self.lease, &meta, parse_lease),
            "lease_ttl" => set(&mut self.lease_ttl, &meta, parse_duration),
            "keep" => set(&mut self.keep, &meta, parse_keep),
            "crate" => set(&mut self.krate, &meta, parse_path),
            _ => Err(meta.error(format!(
                "unknown `#[supervised]` key; the valid keys are {}",
                keys_list()
            ))),
        }
    }
}

/// Stores a key's value, rejecting a second occurrence at the repeated key.
fn set<T>(
    slot: &mut Option<Spanned<T>>,
    meta: &ParseNestedMeta<'_>,
    parse: fn(&ParseNestedMeta<'_>) -> syn::Result<Spanned<T>>,
) -> syn::Result<()> {
    if slot.is_some() {
        let key = key_name(meta);
        return Err(meta.error(format!("duplicate `{key}` key: give it once")));
    }
    *slot = Some(parse(meta)?);
    Ok(())
}

/// `stop_timeout`, or `grace`, its old name (still accepted, not listed):
/// one slot, so giving both is an error that names the two.
fn set_stop_timeout(
    slot: &mut Option<Spanned<Duration>>,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(
            meta.error("duplicate `stop_timeout` key (`grace` is its old name): give it once")
        );
    }
    *slot = Some(parse_duration_allow_zero(meta)?);
    Ok(())
}

/// The literal after `key =`, with an error at the value when it is not one.
fn literal(meta: &ParseNestedMeta<'_>, expected: &str) -> syn::Result<Lit> {
    let key = key_name(meta);
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Ok(lit),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a literal: write {expected}"),
        )),
    }
}

fn string(meta: &ParseNestedMeta<'_>, expected: &str) -> syn::Result<LitStr> {
    match literal(meta, expected)? {
        Lit::Str(s) => Ok(s),
        other => {
            let key = key_name(meta);
            Err(syn::Error::new_spanned(
                other,
                format!("`{key}` takes a string literal: write {expected}"),
            ))
        }
    }
}

fn parse_name(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<String>> {
    let lit = string(meta, "`name = \"scheduler\"`")?;
    let value = lit.value();
    if value.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "`name` must not be empty: it names the subsystem in logs and liveness reports",
        ));
    }
    Ok(Spanned {
        value,
        span: lit.span(),
    })
}

fn parse_lease(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<String>> {
    let lit = string(meta, "`lease = \"scheduler\"`")?;
    let value = lit.value();
    if value.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "`lease` must not be empty: it names the lease the replicas contend for",
        ));
    }
    Ok(Spanned {
        value,
        span: lit.span(),
    })
}

fn duration(meta: &ParseNestedMeta<'_>, allow_zero: bool) -> syn::Result<Spanned<Duration>> {
    let key = key_name(meta);
    let lit = string(
        meta,
        "a duration such as `\"250ms\"`, `\"60s\"` or `\"1m30s\"`",
    )?;
    duration_of(&key, &lit, allow_zero)
}

/// The duration in `lit`, the value of `key`.
fn duration_of(key: &str, lit: &LitStr, allow_zero: bool) -> syn::Result<Spanned<Duration>> {
    let text = lit.value();
    let value = humantime::parse_duration(&text).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!("invalid duration `{text}` for `{key}`: {e}; write it like \"250ms\", \"60s\" or \"1m30s\""),
        )
    })?;
    if value.is_zero() && !allow_zero {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be longer than zero"),
        ));
    }
    Ok(Spanned {
        value,
        span: lit.span(),
    })
}

fn parse_duration(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<Duration>> {
    duration(meta, false)
}

fn parse_duration_allow_zero(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<Duration>> {
    duration(meta, true)
}

fn parse_count(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<u32>> {
    match literal(meta, "a whole number such as `max_restarts = 5`")? {
        Lit::Int(int) => {
            let value = int_value(&int)?;
            Ok(Spanned {
                value,
                span: int.span(),
            })
        }
        other => Err(syn::Error::new_spanned(
            other,
            "`max_restarts` takes a whole number: write `max_restarts = 5`",
        )),
    }
}

fn int_value(int: &LitInt) -> syn::Result<u32> {
    int.base10_parse::<u32>().map_err(|_| {
        syn::Error::new(
            int.span(),
            format!(
                "`max_restarts` must be a whole number from 0 to {}",
                u32::MAX
            ),
        )
    })
}

fn parse_flag(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<bool>> {
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        // A bare `jitter` means `jitter = true`.
        let span = meta
            .path
            .get_ident()
            .map_or_else(Span::call_site, |i| i.span());
        return Ok(Spanned { value: true, span });
    }
    match literal(meta, "`jitter = true` or `jitter = false`")? {
        Lit::Bool(LitBool { value, span }) => Ok(Spanned { value, span }),
        other => Err(syn::Error::new_spanned(
            other,
            "`jitter` takes `true` or `false`",
        )),
    }
}

fn parse_on_stall(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<bool>> {
    let expected = "`on_stall = \"restart\"` or `on_stall = \"report\"`";
    let lit = string(meta, expected)?;
    match lit.value().as_str() {
        "restart" => Ok(Spanned {
            value: true,
            span: lit.span(),
        }),
        "report" => Ok(Spanned {
            value: false,
            span: lit.span(),
        }),
        other => Err(syn::Error::new(
            lit.span(),
            format!("unknown `on_stall` action `{other}`: write {expected}"),
        )),
    }
}

/// `keep(rx, self)`: bare argument names, each once, at least one.
fn parse_keep(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<Vec<Ident>>> {
    let expected = "`keep` takes the names of owned arguments in parentheses: write `keep(rx)` or `keep(self, rx)`";
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(expected));
    }
    let mut names: Vec<Ident> = Vec::new();
    meta.parse_nested_meta(|inner| {
        let Some(name) = inner.path.get_ident() else {
            return Err(syn::Error::new_spanned(&inner.path, expected));
        };
        if !(inner.input.is_empty() || inner.input.peek(syn::Token![,])) {
            return Err(inner.error(expected));
        }
        if names.iter().any(|kept| kept == name) {
            return Err(syn::Error::new(
                name.span(),
                format!("`{name}` is already kept: name it once in `keep(...)`"),
            ));
        }
        names.push(name.clone());
        Ok(())
    })?;
    let span = meta
        .path
        .get_ident()
        .map_or_else(Span::call_site, |i| i.span());
    if names.is_empty() {
        return Err(syn::Error::new(
            span,
            "`keep()` names no argument: write `keep(rx)`, or remove it",
        ));
    }
    Ok(Spanned { value: names, span })
}

fn parse_path(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<Path>> {
    let lit = string(
        meta,
        "the facade's path as a string, e.g. `crate = \"::my_crate::supervised\"`",
    )?;
    // Module style: no generic arguments, which would read as comparisons
    // where the path is used in expressions.
    let value: Path = lit.parse_with(Path::parse_mod_style).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!("`crate` must be a path such as \"::supervised\": {e}"),
        )
    })?;
    Ok(Spanned {
        value,
        span: lit.span(),
    })
}
