//! Rules that span several keys, checked after every key parsed.

use syn::Error;

use crate::attr::Args;

/// Checks the cross-key rules; every broken rule is reported, each at the
/// key that has to change.
pub(crate) fn check(args: &Args) -> syn::Result<()> {
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

/// Folds a list of independent errors into one `syn::Error` (`Ok` when empty).
pub(crate) fn combine(errors: Vec<Error>) -> syn::Result<()> {
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
