//! Code generation: the user's fn, same signature, with its body run under a
//! `Supervision` one fresh run at a time.
//!
//! Input:
//! ```text
//! #[supervised(name = "scheduler", tick = "60s")]
//! async fn scheduler(db: Db, cancel: CancellationToken) { loop { tick(&db).await } }
//! ```
//! Output (abridged):
//! ```text
//! async fn scheduler(db: Db, cancel: CancellationToken) {
//!     use ::supervised::__private as __SUPERVISED_PRIVATE; // what follows names
//!     static SUPERVISOR: Supervisor = Supervisor::new().tick(60s);
//!     let supervisor = &SUPERVISOR;
//!     let subsystem = supervisor.register("scheduler");
//!     let mut supervision = Supervision::new(supervisor, cancel.clone(), &subsystem);
//!     let exit = loop {
//!         let db = fresh_clone(&db);
//!         let cancel = fresh_clone(&cancel);
//!         let body = body::<(), _>(async { let db = db; let cancel = cancel;
//!             { let mut head = LoopHead::default();
//!               loop { head.pass(&subsystem); tick(&db).await } } });
//!         let describe = |output: &()| <() as SupervisedReturn>::error(output).map(describe);
//!         match supervision.run_judged(body, describe).await { Restart => {}, Exit(e) => break e }
//!     };
//!     <() as SupervisedReturn>::finish_cancellable(exit)
//! }
//! ```

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens, TokenStreamExt};
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, FnArg, ItemFn, Pat, PatIdent, Path, ReturnType};

use crate::ast::{Access, FnModel, Receiver};
use crate::attr::Args;
use crate::hygiene::{self, local};
use crate::{loops, receiver};

/// The rewritten fn: the user's attributes, visibility and (plain)
/// signature, with the supervising body as tokens. The body is never
/// parsed back into syn nodes: the macro's time is most of what a
/// supervised fn adds to a build, and a second parse of every body was
/// most of the macro's time.
pub(crate) struct Supervised {
    /// The user's fn with [`plain_signature`] applied and no statements left.
    pub(crate) item: ItemFn,
    /// What goes inside the fn's braces, after its inner attributes.
    pub(crate) body: TokenStream,
}

impl ToTokens for Supervised {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let item = &self.item;
        let outer = |a: &&Attribute| matches!(a.style, AttrStyle::Outer);
        tokens.append_all(item.attrs.iter().filter(outer));
        item.vis.to_tokens(tokens);
        item.sig.to_tokens(tokens);
        item.block.brace_token.surround(tokens, |tokens| {
            tokens.append_all(item.attrs.iter().filter(|a| !outer(a)));
            tokens.extend(self.body.clone());
        });
    }
}

/// The whole rewrite of a fn that passed every rule in `valid`.
pub(crate) fn expand(args: &Args, mut item: ItemFn, model: &FnModel) -> Supervised {
    let handle = hygiene::subsystem();
    plain_signature(&mut item, model);
    let krate: Path = args
        .krate
        .as_ref()
        .map_or_else(|| syn::parse_quote!(::supervised), |k| k.value.clone());
    // Everything the expansion names lives in the facade's `__private`,
    // imported once under one name: a path of one token instead of six at
    // each of the dozen places that name it (fewer tokens for the macro to
    // make and for rustc to read, on every build).
    let private_alias = hygiene::item("PRIVATE");
    let private = quote!(#private_alias);
    loops::inject_heartbeats(&mut item.block, &handle, &private);

    let name = args
        .name
        .as_ref()
        .map_or_else(|| item.sig.ident.to_string(), |n| n.value.clone());
    let supervisor = local("supervisor");
    let supervision = local("supervision");
    let exit = local("exit");
    let body_fut = local("body");
    let self_copy = local("self");
    let static_supervisor = hygiene::item("SUPERVISOR");

    let knobs = supervisor_knobs(args, &private);

    let cancel = match model.cancellation_token() {
        Some(arg) => {
            let binding = &arg.binding;
            quote!(#private::CancellationToken::clone(&#binding))
        }
        None => quote!(#private::CancellationToken::new()),
    };

    // Per run: a fresh value for each argument, moved into the body.
    let mut per_run = Vec::new();
    let mut rebind = Vec::new();
    for arg in &model.args {
        let binding = &arg.binding;
        let fresh = match arg.access {
            // The token that stops the run comes from the supervision: the
            // caller's token, or for a lease-gated fn a child of it that
            // losing the lease cancels too.
            Access::Owned if arg.is_cancellation_token => quote!(#supervision.body_token()),
            // The reference is taken apart from the call so that rustc does not
            // suggest borrowing the argument (`&T` is always `Clone`).
            Access::Owned => {
                let by_ref = hygiene::local_at("by_ref", arg.span);
                let call = quote_spanned!(arg.span=> #private::fresh_clone(#by_ref));
                quote!({ let #by_ref = &#binding; #call })
            }
            Access::Shared => quote!(#binding),
            Access::Unique => quote!(&mut *#binding),
            // The one value, in the fn's frame, lent to this run: what a
            // panic leaves in it (queued messages) is there for the next.
            Access::Kept => quote!(&mut #binding),
        };
        per_run.push(quote!(let #binding = #fresh;));
        // A kept `mut rx` is rebound without its `mut`: the run holds a
        // `&mut`, so the `mut` would only warn.
        let pattern = match arg.access {
            Access::Kept => quote!(#binding),
            _ => {
                let pattern = &arg.pattern;
                quote!(#pattern)
            }
        };
        rebind.push(quote! {
            #[allow(clippy::redundant_locals)]
            let #pattern = #binding;
        });
    }
    if let Receiver::Owned {
        mutable,
        kept,
        span,
    } = model.receiver
    {
        if kept {
            per_run.push(quote_spanned!(span=> let #self_copy = &mut self;));
        } else {
            per_run.push(quote_spanned!(span=> let #self_copy = #private::fresh_clone(&self);));
        }
        let mutability = (mutable && !kept).then(|| quote!(mut));
        rebind.push(quote! {
            #[allow(clippy::redundant_locals)]
            let #mutability #self_copy = #self_copy;
        });
        receiver::rename_self(&mut item.block, &self_copy);
    }

    // What the fn may return is the type checker's call (an alias of
    // `Result` is a `Result`): everything about the return type goes through
    // `SupervisedReturn`, spanned at the type, so a type it refuses gets
    // one error there.
    let (ret, ret_span) = match &item.sig.output {
        ReturnType::Default => (quote!(()), item.sig.ident.span()),
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
    };
    let (output, error) = (
        hygiene::local_at("output", ret_span),
        hygiene::local_at("error", ret_span),
    );
    // The path too, so the bound's error points at the type, not the attribute.
    let at_ret = respanned(&private, ret_span);
    // Method resolution picks `Display` where the error has it, `Debug`
    // otherwise; it can, because the type is concrete here. The import is
    // unused when the error has no `Display`.
    let describe = quote_spanned! {ret_span=>
        |#output: &#ret| {
            #[allow(unused_imports)]
            use #at_ret::DescribeDisplay as _;
            <#ret as #at_ret::SupervisedReturn>::error(#output).map(|#error| (&&#at_ret::Describe(#error)).text())
        }
    };
    // The same local as `exit` (same hygiene), located at the type.
    let exit_at_ret = hygiene::local_at("exit", ret_span);
    let finish = if model.cancellation_token().is_some() {
        quote_spanned!(ret_span=> <#ret as #at_ret::SupervisedReturn>::finish_cancellable(#exit_at_ret))
    } else {
        quote_spanned!(ret_span=> <#ret as #at_ret::SupervisedReturn>::finish(#exit_at_ret))
    };

    let stmts = std::mem::take(&mut item.block.stmts);
    let abort_guard = quote! {
        #[cfg(panic = "abort")]
        ::core::compile_error!(
            "`#[supervised]` cannot recover panics in a crate built with `panic = \"abort\"`: a panic would abort the process instead of restarting the loop; build with `panic = \"unwind\"` (the default)"
        );
    };
    let body = quote! {
        #abort_guard
        use #krate::__private as #private_alias;
        // One supervisor per fn, built at compile time: the fn's future
        // holds a reference to it, not a copy.
        static #static_supervisor: #private::Supervisor = #private::Supervisor::new() #knobs;
        let #supervisor: &'static #private::Supervisor = &#static_supervisor;
        let #handle = #supervisor.register(#name);
        let mut #supervision = #private::Supervision::new(#supervisor, #cancel, &#handle);
        let #exit = loop {
            #(#per_run)*
            let #body_fut = #private::body::<#ret, _>(async {
                #(#rebind)*
                #(#stmts)*
            });
            // `describe` captures nothing: a plain fn pointer, so no
            // future combinator or closure type is compiled per fn.
            match #supervision.run_judged(#body_fut, #describe).await {
                #private::Step::Restart => {}
                #private::Step::Exit(#exit) => break #exit,
            }
        };
        #finish
    };
    Supervised { item, body }
}

/// `tokens` with every token at `span` (a path has no groups to descend).
fn respanned(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

/// The builder calls for the keys that were given; the rest keep the
/// supervisor's defaults.
fn supervisor_knobs(args: &Args, private: &TokenStream) -> TokenStream {
    let duration = |d: std::time::Duration| {
        let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
        quote!(#private::Duration::new(#secs, #nanos))
    };
    let mut knobs = TokenStream::new();
    let durations = [
        ("tick", &args.tick),
        ("stale_after", &args.stale_after),
        ("initial_backoff", &args.initial_backoff),
        ("max_backoff", &args.max_backoff),
        ("stop_timeout", &args.stop_timeout),
    ];
    for (method, value) in durations {
        if let Some(v) = value {
            let method = Ident::new(method, Span::call_site());
            let d = duration(v.value);
            knobs.extend(quote!(.#method(#d)));
        }
    }
    if args.tick.is_none() && !args.no_tick {
        // Forgetting `tick` turns off the staleness check: said once at
        // run time, unless `tick = "none"` says it is meant.
        knobs.extend(quote!(.undeclared_tick()));
    }
    if let Some(jitter) = &args.jitter {
        let j = jitter.value;
        knobs.extend(quote!(.jitter(#j)));
    }
    if let Some(restart) = &args.restart_on_stall {
        let r = restart.value;
        knobs.extend(quote!(.restart_on_stall(#r)));
    }
    if let (Some(max), Some(within)) = (&args.max_restarts, &args.within) {
        let (max, within) = (max.value, duration(within.value));
        knobs.extend(quote!(.max_restarts(#max, #within)));
    }
    if let Some(lease) = &args.lease {
        let name = &lease.value;
        knobs.extend(quote!(.lease(#name)));
    }
    if let Some(ttl) = &args.lease_ttl {
        let ttl = duration(ttl.value);
        knobs.extend(quote!(.lease_ttl(#ttl)));
    }
    knobs
}

/// Gives each argument its plain outer name: a pattern argument
/// (`(a, b): (u8, u8)`) is bound to a generated name and destructured
/// inside each run instead, and `mut` goes from a plain one, since the
/// outer fn never mutates it (each run binds its own `mut` copy). A kept
/// argument is the exception: it is bound `mut`, since each run borrows it
/// mutably. Patterns are not part of a fn's type, so callers see the same
/// signature.
fn plain_signature(item: &mut ItemFn, model: &FnModel) {
    for (input, arg) in item
        .sig
        .inputs
        .iter_mut()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .zip(&model.args)
    {
        if arg.plain {
            if let Pat::Ident(ident) = &mut *input.pat {
                ident.mutability = (arg.access == Access::Kept).then(Default::default);
            }
        } else {
            *input.pat = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: arg.binding.clone(),
                subpat: None,
            });
        }
    }
    if let Receiver::Owned { kept, .. } = model.receiver {
        for input in &mut item.sig.inputs {
            if let FnArg::Receiver(r) = input {
                r.mutability = kept.then(Default::default);
            }
        }
    }
}
