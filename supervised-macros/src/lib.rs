//! The `#[supervised]` attribute. Use it through the `supervised` crate,
//! which documents it and re-exports it.
//!
//! Parse (`attr`), validate (`valid`, `ast`), rewrite loops
//! (`loops`) and expand (`expand`) are kept apart. On any error the
//! user's fn is emitted as written (made `async` if that was the mistake)
//! next to the error, so the rest of the crate still type-checks and one
//! mistake gives one error. Nothing here panics on any input.

mod ast;
mod attr;
mod expand;
mod loops;
#[cfg(test)]
mod never_panics;
#[cfg(test)]
mod snapshots;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::{Ident, Span, TokenStream as TokenStream2};
use quote::ToTokens;
use syn::parse::Parser;
use syn::ItemFn;

/// See the `supervised` crate's documentation of `#[supervised]`.
#[proc_macro_attribute]
pub fn supervised(args: TokenStream, item: TokenStream) -> TokenStream {
    supervised2(args.into(), item.into()).into()
}

fn supervised2(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let mut parsed = attr::Args::default();
    let args_result = syn::meta::parser(|meta| parsed.parse_one(meta)).parse2(args);

    let mut item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let error = not_a_fn_error(&item);
            let mut out = item;
            out.extend(error.to_compile_error());
            return out;
        }
    };

    let mut errors = Vec::new();
    if let Err(e) = args_result.and_then(|()| valid::check(&parsed)) {
        errors.push(e);
    }

    let original = item_fn.clone();
    let model = match ast::analyze(&mut item_fn) {
        Ok(model) => model,
        Err(e) => {
            errors.push(e);
            return fallback(original, errors);
        }
    };

    let handle = Ident::new("__supervised_subsystem", Span::mixed_site());
    if loops::inject_heartbeats(&mut item_fn.block, &handle) == 0 {
        errors.push(syn::Error::new(
            item_fn.block.brace_token.span.open(),
            "`#[supervised]` needs a `loop`, `while` or `for` in the body to beat once per iteration; \
             for a body without one, call `supervised::beat()` where it makes progress and run it with \
             `supervised::Supervisor::run` instead",
        ));
    }
    if !errors.is_empty() {
        return fallback(original, errors);
    }
    expand::expand(&parsed, item_fn, &model, &handle)
}

/// The fn as the user wrote it, made `async` (and non-`const`, non-`extern`)
/// so that callers' `.await`s and the body's own do not add errors of their
/// own, followed by the real errors.
fn fallback(mut item: ItemFn, errors: Vec<syn::Error>) -> TokenStream2 {
    if item.sig.asyncness.is_none() {
        item.sig.asyncness = Some(Default::default());
    }
    item.sig.constness = None;
    item.sig.abi = None;
    let mut out = item.into_token_stream();
    for error in errors {
        out.extend(error.to_compile_error());
    }
    out
}

fn not_a_fn_error(item: &TokenStream2) -> syn::Error {
    let message = "`#[supervised]` goes on an `async fn` with a body (a free fn or a method)";
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(other) => syn::Error::new_spanned(item_head(&other), message),
        Err(_) => syn::Error::new(Span::call_site(), message),
    }
}

/// The item's introducing keyword and name, where the error points.
fn item_head(item: &syn::Item) -> TokenStream2 {
    use quote::quote;
    match item {
        syn::Item::Struct(s) => {
            let (kw, ident) = (&s.struct_token, &s.ident);
            quote!(#kw #ident)
        }
        syn::Item::Enum(e) => {
            let (kw, ident) = (&e.enum_token, &e.ident);
            quote!(#kw #ident)
        }
        syn::Item::Impl(i) => i.impl_token.into_token_stream(),
        syn::Item::Mod(m) => {
            let (kw, ident) = (&m.mod_token, &m.ident);
            quote!(#kw #ident)
        }
        other => other.into_token_stream(),
    }
}
