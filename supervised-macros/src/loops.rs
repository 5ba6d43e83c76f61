//! Injecting a heartbeat at the end of every iteration of each outermost
//! loop.
//!
//! An outermost loop is a `loop`, `while`, `while let` or `for` that is not
//! inside another loop, closure, async block or nested item; one inside an
//! `if`, `match` or plain block still counts. Its iterations end by reaching
//! the end of the body or by a `continue` that targets it: an unlabeled
//! `continue` outside any nested loop, or `continue 'label` with its label
//! from anywhere inside. `break`, `return`, `?` and panics do not beat.
//!
//! syn's visitors do not enter macro invocations, yet `tokio::select!` arms
//! expand in place, so a `continue` in an arm targets the user's loop. Macro
//! tokens are therefore scanned too: `continue` tokens are rewritten where
//! they would target the loop, skipping the bodies of loops written inside
//! the macro call (a token-level approximation: a `continue` the scan cannot
//! see, such as one produced by another macro, would not beat).

use proc_macro2::{Delimiter, Group, Ident, Spacing, TokenStream, TokenTree};
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprContinue, Item, Label, Lifetime, Macro, MacroDelimiter, Stmt, Token};

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

/// Rewrites every outermost loop in `block`; returns how many it found
/// (as many as [`count_outermost`] counts).
///
/// Input: `loop { work().await; if skip { continue; } }`
/// Output: `loop { work().await; if skip { { BEAT; continue; } } BEAT; }`
/// where `BEAT` is `subsystem.beat()` on the pre-registered handle.
pub(crate) fn inject_heartbeats(block: &mut Block, handle: &Ident) -> usize {
    let mut finder = OutermostLoops { handle, found: 0 };
    finder.visit_block_mut(block);
    finder.found
}

struct OutermostLoops<'a> {
    handle: &'a Ident,
    found: usize,
}

impl VisitMut for OutermostLoops<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match shape(expr) {
            Shape::Loop => {}
            Shape::Opaque => return,
            Shape::Transparent => return visit_mut::visit_expr_mut(self, expr),
        }
        let (label, body) = match expr {
            Expr::Loop(l) => (l.label.clone(), &mut l.body),
            Expr::While(w) => (w.label.clone(), &mut w.body),
            Expr::ForLoop(f) => (f.label.clone(), &mut f.body),
            _ => return,
        };
        self.found += 1;
        let mut iteration = Iteration {
            handle: self.handle,
            label: label.as_ref(),
            nested: 0,
        };
        iteration.visit_block_mut(body);
        append_beat(body, self.handle);
    }

    fn visit_item_mut(&mut self, _item: &mut Item) {}
}

/// Appends the end-of-body beat, spanned at the body's closing brace so a
/// diagnostic about it lands at the loop. A trailing expression gets its
/// `;` first (block-like ones such as `if` and `match` need none).
fn append_beat(body: &mut Block, handle: &Ident) {
    let span = body.brace_token.span.close();
    match body.stmts.last_mut() {
        Some(Stmt::Expr(expr, semi @ None)) if !is_block_like(expr) => {
            *semi = Some(Token![;](span));
        }
        Some(Stmt::Macro(m))
            if m.semi_token.is_none() && !matches!(m.mac.delimiter, MacroDelimiter::Brace(_)) =>
        {
            m.semi_token = Some(Token![;](span));
        }
        _ => {}
    }
    let beat = beat_tokens(handle, span);
    body.stmts.push(syn::parse_quote_spanned!(span=> #beat));
}

/// Expressions that may stand as a statement without a `;`.
fn is_block_like(expr: &Expr) -> bool {
    match expr {
        Expr::If(_)
        | Expr::Match(_)
        | Expr::Block(_)
        | Expr::Loop(_)
        | Expr::While(_)
        | Expr::ForLoop(_)
        | Expr::Unsafe(_)
        | Expr::TryBlock(_)
        | Expr::Const(_) => true,
        Expr::Macro(m) => matches!(m.mac.delimiter, MacroDelimiter::Brace(_)),
        _ => false,
    }
}

fn beat_tokens(handle: &Ident, span: proc_macro2::Span) -> TokenStream {
    // `unreachable_code`: a body that always ends in `continue`, `break` or
    // `return` never reaches the end-of-body beat; that is not the user's bug.
    quote_spanned! {span=>
        #[allow(unreachable_code)]
        #handle.beat();
    }
}

/// Walks one outermost loop's body, rewriting the `continue`s that target it.
struct Iteration<'a> {
    handle: &'a Ident,
    label: Option<&'a Label>,
    /// How many loops inside the outermost one enclose the current node.
    nested: usize,
}

impl Iteration<'_> {
    fn targets_us(&self, label: Option<&Lifetime>) -> bool {
        match label {
            None => self.nested == 0,
            Some(l) => self.label.is_some_and(|own| own.name.ident == l.ident),
        }
    }

    fn nested_body(&mut self, body: &mut Block) {
        self.nested += 1;
        self.visit_block_mut(body);
        self.nested -= 1;
    }
}

impl VisitMut for Iteration<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Continue(c) if self.targets_us(c.label.as_ref()) => {
                let handle = self.handle;
                let span = c.span();
                let original: &ExprContinue = c;
                *expr = syn::parse_quote_spanned! {span=>
                    { #handle.beat(); #original }
                };
            }
            Expr::Loop(l) => self.nested_body(&mut l.body),
            Expr::While(w) => {
                self.visit_expr_mut(&mut w.cond);
                self.nested_body(&mut w.body);
            }
            Expr::ForLoop(f) => {
                self.visit_expr_mut(&mut f.expr);
                self.nested_body(&mut f.body);
            }
            Expr::Closure(_) | Expr::Async(_) => {}
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _item: &mut Item) {}

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        let tokens = std::mem::take(&mut mac.tokens);
        mac.tokens = self.rewrite_tokens(tokens, self.nested == 0);
    }
}

impl Iteration<'_> {
    /// Rewrites `continue` tokens that target the outermost loop.
    /// `unlabeled_targets_us` is false inside a loop written in the tokens.
    fn rewrite_tokens(&self, tokens: TokenStream, unlabeled_targets_us: bool) -> TokenStream {
        let mut out: Vec<TokenTree> = Vec::new();
        let mut iter = tokens.into_iter().peekable();
        // Set after `loop`/`while`/`for`: the next brace group is a loop body.
        let mut loop_body_next = false;
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Ident(ref ident) if ident == "continue" => {
                    let span = ident.span();
                    let mut label_tokens: Vec<TokenTree> = Vec::new();
                    if let Some(TokenTree::Punct(p)) = iter.peek() {
                        if p.as_char() == '\'' && p.spacing() == Spacing::Joint {
                            if let Some(quote_tt) = iter.next() {
                                label_tokens.push(quote_tt);
                            }
                            if let Some(name) = iter.next() {
                                label_tokens.push(name);
                            }
                        }
                    }
                    let label_name = match label_tokens.get(1) {
                        Some(TokenTree::Ident(name)) => Some(name.to_string()),
                        _ => None,
                    };
                    let targets_us = match &label_name {
                        None => unlabeled_targets_us,
                        Some(name) => self
                            .label
                            .is_some_and(|own| own.name.ident == name.as_str()),
                    };
                    if targets_us {
                        let handle = self.handle;
                        let label: TokenStream = label_tokens.into_iter().collect();
                        let mut block = Group::new(
                            Delimiter::Brace,
                            quote_spanned! {span=> #handle.beat(); continue #label },
                        );
                        block.set_span(span);
                        out.push(TokenTree::Group(block));
                    } else {
                        out.push(tt);
                        out.extend(label_tokens);
                    }
                }
                TokenTree::Ident(ref ident)
                    if ident == "loop" || ident == "while" || ident == "for" =>
                {
                    loop_body_next = true;
                    out.push(tt);
                }
                TokenTree::Group(group) => {
                    let is_loop_body = loop_body_next && group.delimiter() == Delimiter::Brace;
                    if group.delimiter() == Delimiter::Brace {
                        loop_body_next = false;
                    }
                    let inner =
                        self.rewrite_tokens(group.stream(), unlabeled_targets_us && !is_loop_body);
                    let mut rebuilt = Group::new(group.delimiter(), inner);
                    rebuilt.set_span(group.span());
                    out.push(TokenTree::Group(rebuilt));
                }
                other => out.push(other),
            }
        }
        out.into_iter().collect()
    }
}
