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

use proc_macro2::{Ident, Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{
    token, BinOp, Block, Expr, ExprBlock, ExprField, ExprTuple, Index, Item, Member, Stmt, Token,
};

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
/// [`count_outermost`] counts). `private` names the facade's `__private`
/// module (the expansion's one-token import of it).
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
        let span = expr.span();
        let head = hygiene::local_at("head", span);
        // Built as nodes around the user's loop, never by printing it and
        // parsing it again: that doubled the macro's time on a large body.
        let pass: Expr = syn::parse_quote_spanned!(span=> #head.pass(&#handle));
        match expr {
            Expr::ForLoop(f) => {
                // The adapter is the head: nothing to declare around it.
                let iter = &f.expr;
                let span = iter.span();
                *f.expr = syn::parse_quote_spanned!(span=> #private::beating(#iter, &#handle));
                return;
            }
            Expr::Loop(l) => {
                l.body
                    .stmts
                    .insert(0, Stmt::Expr(pass, Some(Token![;](span))));
            }
            Expr::While(w) => pass_before_condition(&mut w.cond, pass),
            _ => return,
        }
        let declare: Stmt =
            syn::parse_quote_spanned!(span=> let mut #head = #private::LoopHead::default(););
        let original = std::mem::replace(expr, Expr::Verbatim(TokenStream::new()));
        *expr = block_of(span, vec![declare, Stmt::Expr(original, None)]);
    }

    fn visit_item_mut(&mut self, _item: &mut Item) {}
}

/// Makes `pass` the first thing a `while` condition evaluates.
fn pass_before_condition(cond: &mut Expr, pass: Expr) {
    match cond {
        // `a && b`, a `let` chain included, evaluates `a` first.
        Expr::Binary(binary) if matches!(binary.op, BinOp::And(_)) => {
            pass_before_condition(&mut binary.left, pass);
        }
        Expr::Let(binding) => {
            // `(pass, scrutinee).1`
            let span = binding.expr.span();
            let scrutinee =
                std::mem::replace(&mut *binding.expr, Expr::Verbatim(TokenStream::new()));
            let mut elems = Punctuated::new();
            elems.push(pass);
            elems.push(scrutinee);
            *binding.expr = Expr::Field(ExprField {
                attrs: Vec::new(),
                base: Box::new(Expr::Tuple(ExprTuple {
                    attrs: Vec::new(),
                    paren_token: token::Paren(span),
                    elems,
                })),
                dot_token: Token![.](span),
                member: Member::Unnamed(Index { index: 1, span }),
            });
        }
        other => {
            // `{ pass; cond }`
            let span = other.span();
            let original = std::mem::replace(other, Expr::Verbatim(TokenStream::new()));
            *other = block_of(
                span,
                vec![
                    Stmt::Expr(pass, Some(Token![;](span))),
                    Stmt::Expr(original, None),
                ],
            );
        }
    }
}

/// `{ stmts }` as an expression.
fn block_of(span: Span, stmts: Vec<Stmt>) -> Expr {
    Expr::Block(ExprBlock {
        attrs: Vec::new(),
        label: None,
        block: Block {
            brace_token: token::Brace(span),
            stmts,
        },
    })
}
