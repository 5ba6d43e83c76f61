//! Every rule the attribute enforces, after parsing: the cross-key rules on
//! the arguments and the rules on the fn itself. Each broken rule is one
//! error at the token that has to change.

use syn::{Error, ItemFn};

use crate::ast::{Access, FnModel, Receiver};
use crate::attr::Args;

/// Checks the rules that span several keys; every broken one is reported.
pub(crate) fn check_args(args: &Args) -> syn::Result<()> {
    let mut errors: Vec<Error> = Vec::new();

    match (&args.stale_after, &args.tick) {
        (Some(stale), None) => errors.push(Error::new(
            stale.span,
            "`stale_after` needs `tick`: without a declared tick there is no staleness check",
        )),
        (Some(stale), Some(tick)) if stale.value < tick.value => errors.push(Error::new(
            stale.span,
            format!(
                "`stale_after` ({}) is shorter than `tick` ({}): a healthy loop would be reported stale between beats; make it at least the tick (default: twice the tick)",
                humantime::format_duration(stale.value),
                humantime::format_duration(tick.value),
            ),
        )),
        _ => {}
    }

    if let (Some(on_stall), None) = (&args.restart_on_stall, &args.tick) {
        errors.push(Error::new(
            on_stall.span,
            "`on_stall` needs `tick`: a stall is a tick without a heartbeat",
        ));
    }

    match (&args.lease_ttl, &args.lease) {
        (Some(ttl), None) => errors.push(Error::new(
            ttl.span,
            "`lease_ttl` needs `lease`: name the lease it is the ttl of, e.g. `lease = \"scheduler\"`",
        )),
        (Some(ttl), Some(_)) if ttl.value < std::time::Duration::from_millis(50) => {
            errors.push(Error::new(
                ttl.span,
                "`lease_ttl` must be at least 50ms: renewals are due every third of it",
            ));
        }
        _ => {}
    }
    match (&args.max_restarts, &args.within) {
        (Some(max), None) => errors.push(Error::new(
            max.span,
            "`max_restarts` needs `within`: say over which window restarts are counted, e.g. `within = \"1m\"`",
        )),
        (None, Some(within)) => errors.push(Error::new(
            within.span,
            "`within` needs `max_restarts`: say how many restarts the window allows, e.g. `max_restarts = 5`",
        )),
        _ => {}
    }

    if let (Some(initial), Some(max)) = (&args.initial_backoff, &args.max_backoff) {
        if initial.value > max.value {
            errors.push(Error::new(
                initial.span,
                "`initial_backoff` is longer than `max_backoff`: the first delay cannot exceed the cap",
            ));
        }
    }
    if let (Some(initial), None) = (&args.initial_backoff, &args.max_backoff) {
        if initial.value > std::time::Duration::from_secs(30) {
            errors.push(Error::new(
                initial.span,
                "`initial_backoff` is longer than the default `max_backoff` of 30s: raise `max_backoff` too",
            ));
        }
    }

    combine(errors)
}

/// Checks that every name in `keep(...)` is an owned argument of the fn
/// (`self` by value included), bound to a plain name; every name that is
/// not gets its own error at that name.
pub(crate) fn check_keep(args: &Args, model: &FnModel) -> syn::Result<()> {
    let mut errors = Vec::new();
    for name in args.kept() {
        let problem = if name == "self" {
            match model.receiver {
                Receiver::Owned { .. } => None,
                Receiver::Ref => Some(
                    "`self` is a reference, which every run already reborrows: `keep` is for arguments taken by value, such as `mut self`"
                        .to_string(),
                ),
                Receiver::None => Some(
                    "`keep(self)`, but this fn takes no `self`: name an argument it takes by value"
                        .to_string(),
                ),
            }
        } else {
            match model.args.iter().find(|arg| arg.plain && arg.binding == *name) {
                None => Some(format!(
                    "`keep({name})`, but this fn has no argument named `{name}`: `keep` names arguments taken by value and bound to a plain name"
                )),
                Some(arg) if arg.is_cancellation_token => Some(format!(
                    "`{name}` is the `CancellationToken`, which cannot be kept: each run gets a token the supervisor can cancel"
                )),
                Some(arg) => match arg.access {
                    Access::Shared | Access::Unique => Some(format!(
                        "`{name}` is a reference, which every run already shares or reborrows: `keep` is for arguments taken by value"
                    )),
                    Access::Kept | Access::Owned => None,
                },
            }
        };
        if let Some(problem) = problem {
            errors.push(Error::new(name.span(), problem));
        }
    }
    combine(errors)
}

/// Checks the fn: its shape first (every broken shape rule is reported),
/// and only for a well-shaped fn, that its body has a loop to beat in (a
/// missing `async` would otherwise add a second, confusing error).
pub(crate) fn check_fn(item: &ItemFn, model: &FnModel) -> syn::Result<()> {
    let mut errors = Vec::new();
    let sig = &item.sig;
    if let Some(constness) = &sig.constness {
        errors.push(Error::new_spanned(
            constness,
            "`#[supervised]` cannot run a `const fn`: remove `const` (a supervised fn is an async loop)",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(Error::new_spanned(
            abi,
            "`#[supervised]` cannot run an `extern` fn: remove the ABI and call the supervised fn from a plain wrapper",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(Error::new_spanned(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration: `#[supervised]` runs an `async fn` loop",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(Error::new_spanned(
            variadic,
            "`#[supervised]` fns cannot be variadic",
        ));
    }
    combine(errors)?;

    if model.instrumented {
        return Err(Error::new_spanned(
            &sig.ident,
            "`#[tracing::instrument]` is above `#[supervised]`, so this attribute sees instrument's \
             rewritten body, where the loop is inside a future it cannot supervise: put `#[supervised]` \
             above `#[tracing::instrument]` (then each run is instrumented too)",
        ));
    }
    if model.outermost_loops == 0 {
        return Err(Error::new(
            item.block.brace_token.span.open(),
            "`#[supervised]` needs a `loop`, `while` or `for` in the body to beat once per iteration; \
             for a body without one, call `supervised::beat()` where it makes progress and run it with \
             `supervised::Supervisor::run` instead",
        ));
    }
    Ok(())
}

/// Folds a list of independent errors into one `syn::Error` (`Ok` when empty).
fn combine(errors: Vec<Error>) -> syn::Result<()> {
    let mut iter = errors.into_iter();
    match iter.next() {
        None => Ok(()),
        Some(mut first) => {
            for e in iter {
                first.combine(e);
            }
            Err(first)
        }
    }
}
