//! The one place that names what the expansion generates, so no name the
//! user writes can clash with it: locals are `__supervised_*` at
//! `Span::mixed_site()` (invisible to the user's code even by that name),
//! items `__SUPERVISED_*`.

use proc_macro2::{Ident, Span};

/// A generated local, `__supervised_{name}`.
pub(crate) fn local(name: &str) -> Ident {
    local_at(name, Span::call_site())
}

/// [`local`] with `span`'s location, so a diagnostic about it points at
/// the user's token while its hygiene stays the macro's.
pub(crate) fn local_at(name: &str, span: Span) -> Ident {
    Ident::new(
        &format!("__supervised_{name}"),
        Span::mixed_site().located_at(span),
    )
}

/// The outer binding of the `index`-th argument when its pattern is not a
/// plain name (`(a, b): (u8, u8)`, `Point { x, y }: Point`).
pub(crate) fn arg_binding(index: usize) -> Ident {
    local(&format!("arg{index}"))
}

/// The pre-registered subsystem handle every injected beat goes through.
pub(crate) fn subsystem() -> Ident {
    local("subsystem")
}

/// A generated item, `__SUPERVISED_{name}` (items are not hygienic, so the
/// prefix alone keeps them apart from the user's).
pub(crate) fn item(name: &str) -> Ident {
    Ident::new(&format!("__SUPERVISED_{name}"), Span::call_site())
}
