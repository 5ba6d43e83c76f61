//! Beating at the end of every iteration of each outermost loop, detected
//! at the loop's head.
//!
//! An outermost loop is a `loop`, `while`, `while let` or `for` that is not
//! inside another loop, closure, async block or nested item; one inside an
//! `if`, `match` or plain block still counts. Its iterations end by reaching
//! the end of the body or by a `continue` that targets it, and either way
//! control comes back to the loop's head; `break`, `return`, `?` and panics
//! never do. So the beat is at the head, for every pass but the first:
//!
//! - `loop { body }`: a `LoopHead` passed at the top of the body;
//! - `while cond { body }`: passed before the condition is evaluated (the
//!   last evaluation, which ends the loop, beats for the last iteration);
//! - `while let P = e`: passed before `e`, as `(head.pass(..), e).1`, which
//!   keeps `e`'s temporaries alive through the body as `while let` does (a
//!   block would drop them first in edition 2024); in a `let` chain, before
//!   the first operand;
//! - `for p in e`: `e` wrapped in `beating`, whose `next` passes the head.
//!
//! No `continue` can escape this, whatever produced it: a `macro_rules!`
//! of the user's, `tokio::select!`, or `continue 'label` from a nested loop.

use proc_macro2::{Ident, TokenStream};
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{BinOp, Block, Expr, Item};

use crate::hygiene;

/// The one rule both walkers below follow: what an expression is to the
/// search for outermost loops.
enum Shape {
    /// `loop`, `while`, `while let` or `for`: an outermost loop.
    Loop,
    /// A closure, an `async` block or a macro call: code in these runs
    /// outside the loop's iteration (or not at all), so the search stops.
    Opaque,
    /// Anything else: the search goes on inside.
    Transparent,
}

fn shape(expr: &Expr) -> Shape {
    match expr {
        Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => Shape::Loop,
        Expr::Closure(_) | Expr::Async(_) | Expr::Macro(_) => Shape::Opaque,
        _ => Shape::Transparent,
    }
}

/// How many outermost loops `block` has, without changing it (for `ast`).
pub(crate) fn count_outermost(block: &Block) -> usize {
    let mut counter = CountLoops(0);
    counter.visit_block(block);
    counter.0
}

struct CountLoops(usize);

impl Visit<'_> for CountLoops {
    fn visit_expr(&mut self, expr: &Expr) {
        match shape(expr) {
            Shape::Loop => self.0 += 1,
            Shape::Opaque => {}
            Shape::Transparent => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _item: &Item) {}
}

/// Rewrites every outermost loop in `block` to beat at its head (see the
/// module's docs); returns how many it found (as many as
/// [`count_outermost`] counts). `private` is the path of the facade's
/// `__private` module.
///
/// Input: `loop { work().await; if skip { continue; } }`
/// Output: `{ let mut HEAD = LoopHead::default(); loop { HEAD.pass(&SUB); work().await; if skip { continue; } } }`
pub(crate) fn inject_heartbeats(block: &mut Block, handle: &Ident, private: &TokenStream) -> usize {
    let mut finder = OutermostLoops {
        handle,
        private,
        found: 0,
    };
    finder.visit_block_mut(block);
    finder.found
}

struct OutermostLoops<'a> {
    handle: &'a Ident,
    private: &'a TokenStream,
    found: usize,
}

impl VisitMut for OutermostLoops<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match shape(expr) {
            Shape::Loop => {}
            Shape::Opaque => return,
            Shape::Transparent => return visit_mut::visit_expr_mut(self, expr),
        }
        self.found += 1;
        let (handle, private) = (self.handle, self.private);
        let head = hygiene::local_at("head", expr.span());
        let pass = quote_spanned!(expr.span()=> #head.pass(&#handle));
        match expr {
            Expr::ForLoop(f) => {
                // The adapter is the head: nothing to declare around it.
                let iter = &f.expr;
                let span = iter.span();
                *f.expr = syn::parse_quote_spanned!(span=> #private::beating(#iter, &#handle));
                return;
            }
            Expr::Loop(l) => {
                l.body.stmts.insert(0, syn::parse_quote!(#pass;));
            }
            Expr::While(w) => pass_before_condition(&mut w.cond, &pass),
            _ => return,
        }
        let original = expr.clone();
        *expr = syn::parse_quote_spanned! {original.span()=>
            {
                let mut #head = #private::LoopHead::default();
                #original
            }
        };
    }

    fn visit_item_mut(&mut self, _item: &mut Item) {}
}

/// Makes `pass` the first thing a `while` condition evaluates.
fn pass_before_condition(cond: &mut Expr, pass: &TokenStream) {
    match cond {
        // `a && b`, a `let` chain included, evaluates `a` first.
        Expr::Binary(binary) if matches!(binary.op, BinOp::And(_)) => {
            pass_before_condition(&mut binary.left, pass);
        }
        Expr::Let(binding) => {
            let scrutinee = &binding.expr;
            *binding.expr = syn::parse_quote!((#pass, #scrutinee).1);
        }
        other => {
            let original = other.clone();
            *other = syn::parse_quote!({ #pass; #original });
        }
    }
}
