//! The model of the annotated fn: what kind of return, which arguments need
//! a fresh value per run, and which one is the `CancellationToken`.
//! Built from the original syn nodes so errors point at the user's tokens.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Pat, PatIdent, ReceiverKind, ReturnType, Type};

/// What the fn returns, which decides how the supervisor's exit becomes a value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    Unit,
    Result,
}

/// How a run gets its own copy of an argument.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Owned: a fresh clone per run.
    Owned,
    /// `&T`: the same reference every run.
    Shared,
    /// `&mut T`: reborrowed for each run.
    Unique,
}

/// One argument, after its pattern has been given a plain name.
pub(crate) struct Arg {
    /// The name the outer fn binds it to.
    pub(crate) binding: Ident,
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
    Owned { mutable: bool, span: Span },
}

pub(crate) struct FnModel {
    pub(crate) return_kind: ReturnKind,
    pub(crate) receiver: Receiver,
    pub(crate) args: Vec<Arg>,
}

/// Checks the fn's shape and gives each pattern argument a plain name in
/// the outer signature (patterns are not part of a fn's type, so callers see
/// the same signature). Errors point at the offending token.
pub(crate) fn analyze(item: &mut ItemFn) -> syn::Result<FnModel> {
    let mut errors = Vec::new();
    let sig = &item.sig;
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "`#[supervised]` cannot run a `const fn`: remove `const` (a supervised fn is an async loop)",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "`#[supervised]` cannot run an `extern` fn: remove the ABI and call the supervised fn from a plain wrapper",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration: `#[supervised]` runs an `async fn` loop",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "`#[supervised]` fns cannot be variadic",
        ));
    }
    let return_kind = match return_kind(&sig.output) {
        Ok(kind) => Some(kind),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    crate::valid::combine(errors)?;

    let mut receiver = Receiver::None;
    let mut args = Vec::new();
    for (index, input) in item.sig.inputs.iter_mut().enumerate() {
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
                    let span = r.span();
                    let mutable = r.mutability.take().is_some();
                    Receiver::Owned { mutable, span }
                };
            }
            FnArg::Typed(typed) => {
                let span = typed.span();
                let access = match &*typed.ty {
                    Type::Reference(r) if r.mutability.is_some() => Access::Unique,
                    Type::Reference(_) => Access::Shared,
                    _ => Access::Owned,
                };
                let pattern = (*typed.pat).clone();
                let binding = match &mut *typed.pat {
                    // A plain name stays: only `mut` goes, since the outer fn
                    // never mutates it (each run binds its own `mut` copy).
                    Pat::Ident(PatIdent {
                        by_ref: None,
                        subpat: None,
                        ident,
                        mutability,
                        ..
                    }) => {
                        *mutability = None;
                        ident.clone()
                    }
                    other => {
                        let binding =
                            Ident::new(&format!("__supervised_arg{index}"), Span::mixed_site());
                        *other = Pat::Ident(PatIdent {
                            attrs: Vec::new(),
                            by_ref: None,
                            mutability: None,
                            ident: binding.clone(),
                            subpat: None,
                        });
                        binding
                    }
                };
                args.push(Arg {
                    binding,
                    pattern,
                    access,
                    is_cancellation_token: is_cancellation_token(&typed.ty),
                    span,
                });
            }
        }
    }
    Ok(FnModel {
        return_kind: return_kind.unwrap_or(ReturnKind::Unit),
        receiver,
        args,
    })
}

fn return_kind(output: &ReturnType) -> syn::Result<ReturnKind> {
    match output {
        ReturnType::Default => Ok(ReturnKind::Unit),
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => Ok(ReturnKind::Unit),
            Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Result") => {
                Ok(ReturnKind::Result)
            }
            other => Err(syn::Error::new_spanned(
                other,
                "a `#[supervised]` fn returns `()` or `Result<T, E>` (with `E: Display`): the supervisor must tell a failure it restarts from a value it returns",
            )),
        },
    }
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
