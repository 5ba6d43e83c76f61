//! What to emit when the input is wrong: the user's fn as written next to
//! the errors, so the rest of the crate still type-checks, the IDE keeps
//! working and one mistake gives one error.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ItemFn;

/// The fn as the user wrote it, made `async` (and non-`const`, non-`extern`)
/// so that callers' `.await`s and the body's own do not add errors of their
/// own, followed by the real errors.
pub(crate) fn emit(mut item: ItemFn, errors: Vec<syn::Error>) -> TokenStream {
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

/// The item exactly as it came, followed by the errors: for a method that
/// `#[async_trait]` has already rewritten, whose signature must stay
/// async-trait's for its impl to type-check.
pub(crate) fn unchanged(item: ItemFn, errors: Vec<syn::Error>) -> TokenStream {
    let mut out = item.into_token_stream();
    for error in errors {
        out.extend(error.to_compile_error());
    }
    out
}

/// The item unchanged, with the error that the attribute goes on an
/// `async fn`, pointed at the item's keyword and name.
pub(crate) fn not_a_fn(item: TokenStream) -> TokenStream {
    let message = "`#[supervised]` goes on an `async fn` with a body (a free fn or a method)";
    let error = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(other) => syn::Error::new_spanned(item_head(&other), message),
        Err(_) => syn::Error::new(Span::call_site(), message),
    };
    let mut out = item;
    out.extend(error.to_compile_error());
    out
}

/// The item's introducing keyword and name, where the error points.
fn item_head(item: &syn::Item) -> TokenStream {
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
