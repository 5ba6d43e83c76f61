//! What every layer keeps and logs of text that a body or a server
//! controls: panic messages, error messages, item labels, lease holders.
//! Below every folder, so each can use it without importing another. A body can put anything in them
//! (a megabyte, terminal escapes, a `Display` that panics), and none of it
//! may reach the registry, the JSON or the log unbounded or raw.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The most bytes of a message the registry keeps and the log shows.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

/// `message`, cut to [`MAX_MESSAGE_BYTES`] on a char boundary, with a
/// marker that says how long it was.
pub(crate) fn bounded(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let total = message.len();
    let mut cut = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(&format!("… [truncated: {total} bytes in all]"));
    message
}

/// `value.to_string()`, bounded; a `Display` that panics gives a
/// placeholder naming the panic instead of unwinding into the supervisor.
pub(crate) fn displayed(value: &dyn fmt::Display) -> String {
    match catch_unwind(AssertUnwindSafe(|| value.to_string())) {
        Ok(text) => bounded(text),
        Err(payload) => bounded(format!(
            "<its Display implementation panicked: {}>",
            panic_message(&*payload)
        )),
    }
}

/// `format!("{value:?}")`, bounded, with the same placeholder as
/// [`displayed`] for a `Debug` that panics: for error types without
/// `Display`.
pub(crate) fn debugged(value: &dyn fmt::Debug) -> String {
    match catch_unwind(AssertUnwindSafe(|| format!("{value:?}"))) {
        Ok(text) => bounded(text),
        Err(payload) => bounded(format!(
            "<its Debug implementation panicked: {}>",
            panic_message(&*payload)
        )),
    }
}

/// Text for a log field: control characters (newlines, terminal escapes)
/// are written as escapes, so a message can neither forge log lines nor
/// drive the operator's terminal. Everything else is verbatim.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(char::is_control) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(f, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// The message of a panic payload: `&str` and `String` verbatim, anything
/// else as `Box<dyn Any>` (its type cannot be named at run time).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary_with_a_marker() {
        let short = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(bounded(short.clone()), short);
        // 'é' is two bytes: 4095 x then é straddles the limit.
        let long = format!(
            "{}é{}",
            "x".repeat(MAX_MESSAGE_BYTES - 1),
            "y".repeat(1 << 20)
        );
        let total = long.len();
        let cut = bounded(long);
        assert!(cut.starts_with(&"x".repeat(MAX_MESSAGE_BYTES - 1)));
        assert!(cut.ends_with(&format!("… [truncated: {total} bytes in all]")));
        let kept = cut.split('…').next().unwrap_or_default();
        assert_eq!(
            kept.len(),
            MAX_MESSAGE_BYTES - 1,
            "cut before the straddling char"
        );
        assert!(!kept.contains('é') && !kept.contains('y'));
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_verbatim() {
        let hostile = "tenant \"acme\"\n2026-01-01 ERROR forged\x1b[31mred\x1b[0m\tok ünïcode";
        let shown = Escaped(hostile).to_string();
        assert_eq!(
            shown,
            "tenant \"acme\"\\n2026-01-01 ERROR forged\\u{1b}[31mred\\u{1b}[0m\\tok ünïcode"
        );
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn a_panicking_display_gives_a_placeholder() {
        struct Hostile;
        impl fmt::Display for Hostile {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("display exploded")
            }
        }
        assert_eq!(
            displayed(&Hostile),
            "<its Display implementation panicked: display exploded>"
        );
        assert_eq!(displayed(&"fine"), "fine");
    }
}
