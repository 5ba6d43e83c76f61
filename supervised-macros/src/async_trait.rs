//! `#[supervised]` on a method of an `#[async_trait]` impl or trait.
//!
//! `#[async_trait]` expands before this attribute does, so the method
//! arrives already rewritten (async-trait 0.1.44 and later):
//!
//! ```text
//! fn run<'life0, 'async_trait>(&'life0 self, mut rx: Receiver)   // `mut` moved into the body
//!     -> Pin<Box<dyn Future<Output = Ret> + Send + 'async_trait>>
//! {
//!     Box::pin(async move {
//!         if let Some(__ret) = None::<Ret> { return __ret; }     // only for a `-> Ret`
//!         let __self = self;                                     // the arguments...
//!         let mut rx = rx;
//!         let __ret: Ret = { /* the user's body, `self` as `__self` */ };   // `let _: () =` for no `-> Ret`
//!         __ret
//!     })
//! }
//! ```
//!
//! As tracing-attributes does for `#[instrument]`, [`recognize`] reads
//! that shape back into the method as written ([`Method::as_written`]),
//! which the usual rules and expansion then take like any `async fn`;
//! [`Method::rebuild`] puts the supervised body back inside the
//! `Box::pin(async move { .. })`, in place of async-trait's argument
//! bindings and the user's block. The signature stays async-trait's, with
//! the outer argument patterns the expansion chose.

use proc_macro2::{Group, Ident, TokenStream, TokenTree};
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Block, Expr, ExprAsync, FnArg, ItemFn, Macro, Pat, ReturnType, Stmt};

use crate::expand::Supervised;

/// What the body of a fn that is not `async` turned out to be.
pub(crate) enum Recognized {
    /// Not a boxed future: the rules report the missing `async`.
    No,
    /// `Box::pin(..)`, but not in a shape this attribute can read back.
    Unrecognized(syn::Error),
    /// async-trait's output (boxed: it holds two copies of the fn).
    Method(Box<Method>),
}

/// A method as async-trait rewrote it, and where the parts are.
pub(crate) struct Method {
    /// The item as it came in.
    item: ItemFn,
    /// The method as the user wrote it: `async`, its own return type, its
    /// patterns, `self` in the body.
    as_written: ItemFn,
    /// In the `async move` block: the argument bindings to drop, and the
    /// `let` whose initialiser is the user's block.
    bindings: Vec<usize>,
    body_let: usize,
}

const EXPECTED: &str = "`#[supervised]` on a fn that returns a boxed future expects the body `#[async_trait]` generates: `Box::pin(async move { .. })` around the method's own body, from async-trait 0.1.44 or later; write the method as an `async fn` in an `#[async_trait]` impl, or put `#[supervised]` on a plain `async fn` and box its future yourself";

/// Reads a non-`async` fn's body: async-trait's `Box::pin(async move { .. })`,
/// some other boxed future (one error, at the `Box::pin` call), or neither.
pub(crate) fn recognize(item: &ItemFn) -> Recognized {
    if item.sig.asyncness.is_some() {
        return Recognized::No;
    }
    let Some(Stmt::Expr(Expr::Call(call), None)) = item.block.stmts.last() else {
        return Recognized::No;
    };
    let Expr::Path(func) = &*call.func else {
        return Recognized::No;
    };
    let segments: Vec<String> = func
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !segments.ends_with(&["Box".to_string(), "pin".to_string()]) {
        return Recognized::No;
    }
    let unrecognized = || Recognized::Unrecognized(syn::Error::new_spanned(&call.func, EXPECTED));
    let (Some(Expr::Async(future)), 1) = (call.args.first(), call.args.len()) else {
        return unrecognized();
    };
    if item.block.stmts.len() != 1 || future.capture.is_none() {
        return unrecognized();
    }
    match read_back(item, future) {
        Some(method) => Recognized::Method(Box::new(method)),
        None => unrecognized(),
    }
}

/// The parts of async-trait's `async move` block, and the method they
/// were made from; `None` when a part is missing.
fn read_back(item: &ItemFn, future: &ExprAsync) -> Option<Method> {
    let stmts = &future.block.stmts;
    // The last `let __ret: Ret = { .. }` or `let _: () = { .. }`.
    let (body_let, ret, body) = stmts.iter().enumerate().rev().find_map(|(i, stmt)| {
        let Stmt::Local(local) = stmt else {
            return None;
        };
        let Pat::Type(typed) = &local.pat else {
            return None;
        };
        let named = match &*typed.pat {
            Pat::Ident(ident) => ident.ident == "__ret",
            Pat::Wild(_) => true,
            _ => false,
        };
        match local.init.as_ref().map(|init| &*init.expr) {
            Some(Expr::Block(block)) if named && block.label.is_none() => {
                Some((i, (*typed.ty).clone(), block.block.clone()))
            }
            _ => None,
        }
    })?;
    // Before it: the guard that names the return type, then one binding
    // per argument taken by value.
    let bindings: Vec<usize> = (0..body_let)
        .filter(|&i| matches!(stmts[i], Stmt::Local(_)))
        .collect();

    let mut as_written = item.clone();
    as_written.sig.asyncness = Some(Default::default());
    as_written.sig.output = match &ret {
        syn::Type::Tuple(unit) if unit.elems.is_empty() => ReturnType::Default,
        ty => ReturnType::Type(Default::default(), Box::new(ty.clone())),
    };
    for input in &mut as_written.sig.inputs {
        match input {
            // async-trait moved `mut` from `mut self` to `let mut __self`.
            FnArg::Receiver(receiver) => {
                if binding_pattern(stmts, &bindings, "self").is_some_and(is_mut_ident) {
                    receiver.mutability = Some(Default::default());
                }
            }
            // And from `mut rx` to `let mut rx = rx;`; a pattern argument
            // became `__argN`, destructured by `let PAT = { .. __argN };`.
            FnArg::Typed(typed) => {
                if let Pat::Ident(ident) = &*typed.pat {
                    if let Some(pattern) =
                        binding_pattern(stmts, &bindings, &ident.ident.to_string())
                    {
                        *typed.pat = pattern.clone();
                    }
                }
            }
        }
    }
    as_written.block = Box::new(with_self(&body));
    Some(Method {
        item: item.clone(),
        as_written,
        bindings,
        body_let,
    })
}

/// The pattern async-trait bound the argument `source` to in the block:
/// `let PAT = source;` or `let PAT = { let source = source; source };`.
fn binding_pattern<'a>(stmts: &'a [Stmt], bindings: &[usize], source: &str) -> Option<&'a Pat> {
    bindings.iter().find_map(|&i| {
        let Stmt::Local(local) = &stmts[i] else {
            return None;
        };
        let init = &*local.init.as_ref()?.expr;
        let from = match init {
            Expr::Path(path) => path.path.get_ident(),
            Expr::Block(block) => match block.block.stmts.last() {
                Some(Stmt::Expr(Expr::Path(path), None)) => path.path.get_ident(),
                _ => None,
            },
            _ => None,
        };
        from.is_some_and(|from| from == source)
            .then_some(&local.pat)
    })
}

fn is_mut_ident(pattern: &Pat) -> bool {
    matches!(pattern, Pat::Ident(ident) if ident.mutability.is_some())
}

/// `block` with async-trait's `__self` turned back into `self`: inside
/// the `async move` block `self` is the method's receiver, as it is in
/// the method the user wrote. A visitor for the syntax (so every brace
/// keeps its own span for diagnostics), a token walk inside macro calls,
/// where async-trait renamed too.
fn with_self(block: &Block) -> Block {
    let mut block = block.clone();
    BackToSelf.visit_block_mut(&mut block);
    block
}

struct BackToSelf;

impl BackToSelf {
    fn walk(tokens: TokenStream) -> TokenStream {
        tokens
            .into_iter()
            .map(|token| match token {
                TokenTree::Ident(mut ident) => {
                    BackToSelf.visit_ident_mut(&mut ident);
                    TokenTree::Ident(ident)
                }
                TokenTree::Group(group) => {
                    let mut rebuilt = Group::new(group.delimiter(), Self::walk(group.stream()));
                    rebuilt.set_span(group.span());
                    TokenTree::Group(rebuilt)
                }
                other => other,
            })
            .collect()
    }
}

impl VisitMut for BackToSelf {
    fn visit_ident_mut(&mut self, ident: &mut Ident) {
        if ident == "__self" {
            *ident = Ident::new("self", ident.span());
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        mac.tokens = Self::walk(std::mem::take(&mut mac.tokens));
    }
}

impl Method {
    /// The method as the user wrote it, for the rules and the expansion.
    pub(crate) fn as_written(&self) -> &ItemFn {
        &self.as_written
    }

    /// async-trait's method with `supervised` (the expansion of
    /// [`Method::as_written`]) inside its `Box::pin(async move { .. })`:
    /// the expansion's outer patterns in the signature, the argument
    /// bindings gone (the expansion binds each run's own), and the
    /// supervised block where the user's was.
    pub(crate) fn rebuild(self: Box<Self>, supervised: Supervised) -> TokenStream {
        let Method {
            mut item,
            bindings,
            body_let,
            ..
        } = *self;
        for (input, outer) in item.sig.inputs.iter_mut().zip(&supervised.item.sig.inputs) {
            match (input, outer) {
                (FnArg::Receiver(receiver), FnArg::Receiver(outer)) => {
                    receiver.mutability = outer.mutability;
                }
                (FnArg::Typed(typed), FnArg::Typed(outer)) => typed.pat = outer.pat.clone(),
                _ => {}
            }
        }
        if let Some(Stmt::Expr(Expr::Call(call), None)) = item.block.stmts.last_mut() {
            if let Some(Expr::Async(future)) = call.args.first_mut() {
                let stmts = &mut future.block.stmts;
                if let Some(Stmt::Local(local)) = stmts.get_mut(body_let) {
                    if let Some(init) = local.init.as_mut() {
                        // As tokens: the supervising body is not parsed again.
                        let body = supervised.body;
                        *init.expr = Expr::Verbatim(quote!({ #body }));
                    }
                }
                let kept: Vec<Stmt> = std::mem::take(stmts)
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !bindings.contains(i))
                    .map(|(_, stmt)| stmt)
                    .collect();
                *stmts = kept;
            }
        }
        quote!(#item)
    }
}
