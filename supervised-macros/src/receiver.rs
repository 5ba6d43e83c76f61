//! Renaming `self` inside the body of a method that takes `self` by value,
//! so each run uses its own fresh clone of the receiver.
//!
//! Input: `async fn run(self) { loop { self.tick().await; } }`
//! Output, in the per-run body: `loop { __supervised_self.tick().await; }`
//!
//! syn's visitors do not enter macro calls, so their tokens are renamed by
//! a token walk. As async-trait's `ReplaceSelf` does, two cases are
//! special:
//! - a macro call whose tokens contain `fn` is left alone: a fn defined in
//!   it has a `self` of its own, and renaming that one breaks it;
//! - a `macro_rules!` defined in the body is renamed: by hygiene, its
//!   `self` is the body's `self`.
//!
//! Nested items are skipped: they have their own `self`. `self::path` is
//! a module path, not the receiver, and stays.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, ExprPath, Item, Macro};

/// Renames every `self` in `block` that means the receiver to `to`.
pub(crate) fn rename_self(block: &mut Block, to: &Ident) {
    RenameSelf { to }.visit_block_mut(block);
}

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
                    let mut rebuilt =
                        Group::new(group.delimiter(), self.rename_tokens(group.stream()));
                    rebuilt.set_span(group.span());
                    out.push(TokenTree::Group(rebuilt));
                }
                other => out.push(other),
            }
        }
        out.into_iter().collect()
    }
}

/// Whether `tokens` contain the keyword `fn` at any depth.
fn contains_fn(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        TokenTree::Ident(ident) => ident == "fn",
        TokenTree::Group(group) => contains_fn(&group.stream()),
        _ => false,
    })
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
        if contains_fn(&mac.tokens) {
            return;
        }
        let tokens = std::mem::take(&mut mac.tokens);
        mac.tokens = self.rename_tokens(tokens);
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        if let Item::Macro(item) = item {
            if item.mac.path.is_ident("macro_rules") {
                self.visit_macro_mut(&mut item.mac);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn renamed(body: TokenStream) -> String {
        let mut block: Block = syn::parse2(body).expect("a block");
        rename_self(&mut block, &Ident::new("__copy", Span::call_site()));
        quote!(#block).to_string()
    }

    #[test]
    fn self_is_renamed_in_code_and_macro_tokens_but_not_in_paths() {
        let out = renamed(quote!({
            self.tick();
            println!("{}", self.name);
            let _ = self::helper();
        }));
        assert!(out.contains("__copy . tick ()"), "{out}");
        assert!(out.contains("__copy . name"), "{out}");
        assert!(out.contains("self :: helper"), "{out}");
    }

    #[test]
    fn a_macro_call_that_defines_a_fn_keeps_its_self() {
        let out = renamed(quote!({
            define! { impl Local { fn get(&self) -> u8 { self.0 } } }
            self.tick();
        }));
        assert!(
            out.contains("fn get (& self) -> u8 { self . 0 }"),
            "the fn's own receiver was renamed: {out}"
        );
        assert!(out.contains("__copy . tick ()"), "{out}");
    }

    #[test]
    fn a_macro_rules_in_the_body_sees_the_renamed_self() {
        let out = renamed(quote!({
            macro_rules! name {
                () => {
                    self.name.clone()
                };
            }
            let _ = name!();
        }));
        assert!(out.contains("__copy . name . clone ()"), "{out}");
        assert!(!out.contains("self . name"), "{out}");
    }

    #[test]
    fn nested_items_keep_their_own_self() {
        let out = renamed(quote!({
            impl S {
                fn m(self) -> Self {
                    self
                }
            }
            self.tick();
        }));
        assert!(out.contains("fn m (self) -> Self { self }"), "{out}");
        assert!(out.contains("__copy . tick ()"), "{out}");
    }
}
