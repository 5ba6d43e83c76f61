//! A read-only model of the annotated fn: what kind of return, which
//! arguments need a fresh value per run, which one is the
//! `CancellationToken`, and how many loops will beat. Built from the
//! original syn nodes so errors point at the user's tokens; nothing here
//! changes the input (`expand` does the rewriting, `valid` the judging).

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Block, FnArg, Ident, ItemFn, Pat, PatIdent, ReceiverKind, Stmt, Type};

use crate::{hygiene, loops};

/// How a run gets its own copy of an argument.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Owned: a fresh clone per run.
    Owned,
    /// `&T`: the same reference every run.
    Shared,
    /// `&mut T`: reborrowed for each run.
    Unique,
    /// Owned and named in `keep(...)`: moved once into the supervisor's
    /// frame, and lent to each run as `&mut T`.
    Kept,
}

/// One typed argument.
pub(crate) struct Arg {
    /// The name the outer fn binds it to: the user's own for a plain
    /// `name` or `mut name`, a generated one for any other pattern.
    pub(crate) binding: Ident,
    /// Whether its pattern is that plain name (`mut` aside).
    pub(crate) plain: bool,
    /// The user's pattern, re-bound inside each run (`mut db`, `(a, b)`, ...).
    pub(crate) pattern: Pat,
    pub(crate) access: Access,
    pub(crate) is_cancellation_token: bool,
    /// The whole `pat: Type`, where a "not `Clone`" error points.
    pub(crate) span: Span,
}

/// `self` in its forms; `self` by value is renamed inside the body.
#[derive(Clone, Copy)]
pub(crate) enum Receiver {
    None,
    Ref,
    /// `self` or `mut self`; `kept` when named in `keep(...)`.
    Owned {
        mutable: bool,
        kept: bool,
        span: Span,
    },
}

pub(crate) struct FnModel {
    pub(crate) receiver: Receiver,
    pub(crate) args: Vec<Arg>,
    /// Outermost loops of the body: each beats once per iteration.
    pub(crate) outermost_loops: usize,
    /// Whether the body is `#[tracing::instrument]`'s output: an attribute
    /// above this one has already moved the user's body into a future.
    pub(crate) instrumented: bool,
}

impl FnModel {
    /// Whether an argument is the token that stops the supervision.
    pub(crate) fn cancellation_token(&self) -> Option<&Arg> {
        self.args.iter().find(|a| a.is_cancellation_token)
    }
}

/// Reads the model of `item`, with the arguments named in `kept` (the
/// `keep(...)` list; names that match nothing are `valid`'s to report).
pub(crate) fn analyze(item: &ItemFn, kept: &[Ident]) -> FnModel {
    let is_kept = |name: &str| kept.iter().any(|k| k == name);
    let mut receiver = Receiver::None;
    let mut args = Vec::new();
    for (index, input) in item.sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => {
                let by_reference = match &r.kind {
                    ReceiverKind::Reference(..) => true,
                    ReceiverKind::Typed(_, ty) => matches!(**ty, Type::Reference(_)),
                    _ => false,
                };
                receiver = if by_reference {
                    Receiver::Ref
                } else {
                    Receiver::Owned {
                        mutable: r.mutability.is_some(),
                        kept: is_kept("self"),
                        span: r.span(),
                    }
                };
            }
            FnArg::Typed(typed) => {
                let (binding, plain) = match &*typed.pat {
                    Pat::Ident(PatIdent {
                        by_ref: None,
                        subpat: None,
                        ident,
                        ..
                    }) => (ident.clone(), true),
                    _ => (hygiene::arg_binding(index), false),
                };
                let access = match &*typed.ty {
                    Type::Reference(r) if r.mutability.is_some() => Access::Unique,
                    Type::Reference(_) => Access::Shared,
                    _ if plain && is_kept(&binding.to_string()) => Access::Kept,
                    _ => Access::Owned,
                };
                args.push(Arg {
                    binding,
                    plain,
                    pattern: (*typed.pat).clone(),
                    access,
                    is_cancellation_token: is_cancellation_token(&typed.ty),
                    span: typed.span(),
                });
            }
        }
    }
    FnModel {
        receiver,
        args,
        outermost_loops: loops::count_outermost(&item.block),
        instrumented: is_instrument_output(&item.block),
    }
}

/// `#[tracing::instrument]` on an async fn leaves a body that starts with
/// `let __tracing_attr_span = ...; let __tracing_instrument_future = ...;`
/// (tracing-attributes 0.1): the user's statements are inside that future.
fn is_instrument_output(block: &Block) -> bool {
    block.stmts.iter().take(3).any(|stmt| match stmt {
        Stmt::Local(local) => matches!(
            &local.pat,
            Pat::Ident(PatIdent { ident, .. })
                if ident == "__tracing_attr_span" || ident == "__tracing_instrument_future"
        ),
        _ => false,
    })
}

/// `CancellationToken` by its last path segment, so `tokio_util::sync::
/// CancellationToken`, `supervised::CancellationToken` and a `use`d name all count.
fn is_cancellation_token(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "CancellationToken" && s.arguments.is_none()),
        _ => false,
    }
}
