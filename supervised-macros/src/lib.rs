//! The `#[supervised]` attribute. Use it through the `supervised` crate,
//! which documents it and re-exports it.
//!
//! Each step has its own file, and each reads only what the one before
//! produced:
//!
//! - `attr.rs` parses the arguments (one setter per key; `attr::KEYS` is
//!   the one list of keys);
//! - `ast.rs` reads a model of the fn, changing nothing;
//! - `valid.rs` holds every rule, over the arguments and the model;
//! - `expand.rs` rewrites the fn: `loops.rs` injects the beats,
//!   `receiver.rs` renames `self` in a by-value method, and `hygiene.rs`
//!   names everything generated;
//! - `fallback.rs` is what comes out when a rule is broken: the user's fn as
//!   written next to the errors, so one mistake gives one error and the rest
//!   of the crate still type-checks;
//! - `async_trait.rs` reads a method that `#[async_trait]` has already
//!   rewritten back into the `async fn` the user wrote, for the steps above,
//!   and puts the result back inside async-trait's boxed future.
//!
//! Nothing here panics on any input (`tests/never_panics.rs`).

mod ast;
mod async_trait;
mod attr;
mod expand;
mod fallback;
mod hygiene;
mod loops;
mod receiver;
#[cfg(test)]
mod tests;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
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

    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => return fallback::not_a_fn(item),
    };

    match async_trait::recognize(&item_fn) {
        async_trait::Recognized::No => match check(&parsed, args_result, &item_fn) {
            Ok(model) => expand::expand(&parsed, item_fn, &model).into_token_stream(),
            Err(errors) => fallback::emit(item_fn, errors),
        },
        async_trait::Recognized::Unrecognized(error) => fallback::unchanged(item_fn, vec![error]),
        async_trait::Recognized::Method(method) => {
            match check(&parsed, args_result, method.as_written()) {
                Ok(model) => {
                    let written = method.as_written().clone();
                    method.rebuild(expand::expand(&parsed, written, &model))
                }
                Err(errors) => fallback::unchanged(item_fn, errors),
            }
        }
    }
}

/// Every rule over the arguments and `item`: the fn's model for
/// `expand`, or every broken rule's error. Reads `item` only, so the
/// fallback gets the fn as written without a copy of it.
fn check(
    parsed: &attr::Args,
    args_result: syn::Result<()>,
    item: &ItemFn,
) -> Result<ast::FnModel, Vec<syn::Error>> {
    let model = ast::analyze(item, parsed.kept());
    let mut errors = Vec::new();
    if let Err(e) = args_result.and_then(|()| valid::check_args(parsed)) {
        errors.push(e);
    }
    if let Err(e) = valid::check_keep(parsed, &model) {
        errors.push(e);
    }
    if let Err(e) = valid::check_fn(item, &model) {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(model)
    } else {
        Err(errors)
    }
}
