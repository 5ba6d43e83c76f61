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
//!     static SUPERVISOR: Supervisor = Supervisor::new().tick(60s);
//!     let supervisor = &SUPERVISOR;
//!     let subsystem = supervisor.register("scheduler");
//!     let mut supervision = Supervision::new(supervisor, cancel.clone(), &subsystem);
//!     let exit = loop {
//!         let db = fresh_clone(&db);
//!         let cancel = fresh_clone(&cancel);
//!         let body = body::<(), _>(async { let db = db; let cancel = cancel;
//!             loop { { tick(&db).await } subsystem.beat(); } });
//!         match supervision.run_once(body).await { Restart => {}, Exit(e) => break e }
//!     };
//!     finish_unit(exit)
//! }
//! ```

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, ExprPath, Item, ItemFn, Macro, Path, ReturnType};

use crate::ast::{Access, FnModel, Receiver, ReturnKind};
use crate::attr::Args;

/// A generated local: prefixed and mixed-site, so no user name can clash.
fn local(name: &str) -> Ident {
    Ident::new(&format!("__supervised_{name}"), Span::mixed_site())
}

pub(crate) fn expand(
    args: &Args,
    mut item: ItemFn,
    model: &FnModel,
    handle: &Ident,
) -> TokenStream {
    let krate: Path = args
        .krate
        .as_ref()
        .map_or_else(|| syn::parse_quote!(::supervised), |k| k.value.clone());
    let private = quote!(#krate::__private);

    let name = args
        .name
        .as_ref()
        .map_or_else(|| item.sig.ident.to_string(), |n| n.value.clone());
    let supervisor = local("supervisor");
    let supervision = local("supervision");
    let exit = local("exit");
    let body_fut = local("body");
    let self_copy = local("self");

    let knobs = supervisor_knobs(args, &private);

    let cancel = match model.args.iter().find(|a| a.is_cancellation_token) {
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
            // The reference is taken apart from the call so that rustc does not
            // suggest borrowing the argument (`&T` is always `Clone`).
            Access::Owned => {
                let by_ref = Ident::new(
                    "__supervised_by_ref",
                    Span::mixed_site().located_at(arg.span),
                );
                let call = quote_spanned!(arg.span=> #private::fresh_clone(#by_ref));
                quote!({ let #by_ref = &#binding; #call })
            }
            Access::Shared => quote!(#binding),
            Access::Unique => quote!(&mut *#binding),
        };
        per_run.push(quote!(let #binding = #fresh;));
        let pattern = &arg.pattern;
        rebind.push(quote! {
            #[allow(clippy::redundant_locals)]
            let #pattern = #binding;
        });
    }
    if let Receiver::Owned { mutable, span } = model.receiver {
        per_run.push(quote_spanned!(span=> let #self_copy = #private::fresh_clone(&self);));
        let mutability = mutable.then(|| quote!(mut));
        rebind.push(quote! {
            #[allow(clippy::redundant_locals)]
            let #mutability #self_copy = #self_copy;
        });
        RenameSelf { to: &self_copy }.visit_block_mut(&mut item.block);
    }

    let ret = match &item.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let finish = match model.return_kind {
        ReturnKind::Unit => quote!(#private::finish_unit(#exit)),
        ReturnKind::Result if model.args.iter().any(|a| a.is_cancellation_token) => {
            quote!(#private::finish_result(#exit))
        }
        ReturnKind::Result => quote!(#private::finish_result_uncancellable(#exit)),
    };

    let stmts = &item.block.stmts;
    let abort_guard = quote! {
        #[cfg(panic = "abort")]
        ::core::compile_error!(
            "`#[supervised]` cannot recover panics in a crate built with `panic = \"abort\"`: a panic would abort the process instead of restarting the loop; build with `panic = \"unwind\"` (the default)"
        );
    };
    let new_body: Block = syn::parse_quote! {{
        #abort_guard
        // One supervisor per fn, built at compile time: the fn's future
        // holds a reference to it, not a copy.
        static __SUPERVISED_SUPERVISOR: #private::Supervisor = #private::Supervisor::new() #knobs;
        let #supervisor: &'static #private::Supervisor = &__SUPERVISED_SUPERVISOR;
        let #handle = #supervisor.register(#name);
        let mut #supervision = #private::Supervision::new(#supervisor, #cancel, &#handle);
        let #exit = loop {
            #(#per_run)*
            let #body_fut = #private::body::<#ret, _>(async {
                #(#rebind)*
                #(#stmts)*
            });
            match #supervision.run_once(#body_fut).await {
                #private::Step::Restart => {}
                #private::Step::Exit(#exit) => break #exit,
            }
        };
        #finish
    }};
    *item.block = new_body;
    quote!(#item)
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
        ("grace", &args.grace),
    ];
    for (method, value) in durations {
        if let Some(v) = value {
            let method = Ident::new(method, Span::call_site());
            let d = duration(v.value);
            knobs.extend(quote!(.#method(#d)));
        }
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
    knobs
}

/// Renames `self` to a per-run copy in a body whose fn takes `self` by
/// value, including inside macro tokens; stops at nested items, which have
/// their own `self`.
struct RenameSelf<'a> {
    to: &'a Ident,
}

impl RenameSelf<'_> {
    fn renamed(&self, span: Span) -> Ident {
        Ident::new(&self.to.to_string(), self.to.span().located_at(span))
    }

    fn rename_tokens(&self, tokens: TokenStream) -> TokenStream {
        let mut out: Vec<TokenTree> = Vec::new();
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                // `self` but not `self::path`.
                TokenTree::Ident(ident)
                    if ident == "self"
                        && !matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':') =>
                {
                    out.push(TokenTree::Ident(self.renamed(ident.span())));
                }
                TokenTree::Group(group) => {
                    let mut rebuilt = proc_macro2::Group::new(
                        group.delimiter(),
                        self.rename_tokens(group.stream()),
                    );
                    rebuilt.set_span(group.span());
                    out.push(TokenTree::Group(rebuilt));
                }
                other => out.push(other),
            }
        }
        out.into_iter().collect()
    }
}

impl VisitMut for RenameSelf<'_> {
    fn visit_expr_path_mut(&mut self, expr: &mut ExprPath) {
        if expr.qself.is_none() && expr.path.is_ident("self") {
            if let Some(segment) = expr.path.segments.first_mut() {
                segment.ident = self.renamed(segment.ident.span());
            }
        }
        visit_mut::visit_expr_path_mut(self, expr);
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        let tokens = std::mem::take(&mut mac.tokens);
        mac.tokens = self.rename_tokens(tokens);
    }

    fn visit_item_mut(&mut self, _item: &mut Item) {}
}
