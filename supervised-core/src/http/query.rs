//! The query parameters of `/admin/liveness` and `/admin/liveness/summary`,
//! parsed strictly: an unknown or malformed parameter is an error that names
//! it, never ignored (a misspelt `stat=failed` must not answer everything).

use crate::registry::query::Filter;
use crate::SubsystemState;

/// The most entries one page may ask for, and the most names a summary
/// lists by default.
pub(super) const MAX_LIMIT: usize = 10_000;
pub(super) const DEFAULT_SUMMARY_NAMES: usize = 100;

/// What a request asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Query {
    pub(super) filter: Filter,
    pub(super) limit: Option<usize>,
    pub(super) after: Option<String>,
}

/// A parameter the request got wrong.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadParameter {
    /// The parameter's name as sent, cut to 64 bytes.
    pub(super) parameter: String,
    pub(super) message: String,
}

impl BadParameter {
    fn new(parameter: &str, message: impl Into<String>) -> Self {
        BadParameter {
            parameter: cut(parameter, 64).to_string(),
            message: message.into(),
        }
    }
}

/// Which parameters a route takes.
#[derive(Clone, Copy)]
pub(super) enum Route {
    /// `/admin/liveness`: the filters, `limit` and `after`.
    Liveness,
    /// `/admin/liveness/summary`: the filters, and `limit` for the names.
    Summary,
}

/// Parses a raw query string (`None`: no `?` at all).
pub(super) fn parse(raw: Option<&str>, route: Route) -> Result<Query, BadParameter> {
    let mut query = Query::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let name: &'static str = match &*key {
            "group" => "group",
            "state" => "state",
            "stale" => "stale",
            "prefix" => "prefix",
            "limit" => "limit",
            "after" if matches!(route, Route::Liveness) => "after",
            _ => {
                let known = match route {
                    Route::Liveness => "group, state, stale, prefix, limit, after",
                    Route::Summary => "group, state, stale, prefix, limit",
                };
                return Err(BadParameter::new(
                    &key,
                    format!("unknown parameter; this route takes {known}"),
                ));
            }
        };
        // `state` may repeat (`state=failed&state=stale`); the others say
        // one thing each.
        if name != "state" && seen.contains(&name) {
            return Err(BadParameter::new(name, "given more than once"));
        }
        seen.push(name);
        match name {
            "group" => {
                query.filter.group =
                    Some(non_empty(name, &value)?.trim_end_matches('/').to_string())
            }
            "prefix" => query.filter.prefix = Some(non_empty(name, &value)?.to_string()),
            "after" => query.after = Some(non_empty(name, &value)?.to_string()),
            "stale" => {
                query.filter.stale = Some(match &*value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(BadParameter::new(name, "must be true or false")),
                })
            }
            "state" => {
                let mut bits = query.filter.states.unwrap_or(0);
                for state in value.split(',') {
                    let Some(state) = SubsystemState::from_name(state) else {
                        let names: Vec<&str> =
                            SubsystemState::ALL.iter().map(|s| s.as_str()).collect();
                        return Err(BadParameter::new(
                            name,
                            format!("unknown state; the states are {}", names.join(", ")),
                        ));
                    };
                    bits |= Filter::state_bit(state);
                }
                query.filter.states = Some(bits);
            }
            "limit" => {
                let limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        BadParameter::new(
                            name,
                            format!("must be a whole number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
                query.limit = Some(limit);
            }
            _ => unreachable!("every name above is matched"),
        }
    }
    Ok(query)
}

/// `text` cut to at most `max` bytes on a char boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn non_empty<'a>(name: &str, value: &'a str) -> Result<&'a str, BadParameter> {
    if value.is_empty() {
        return Err(BadParameter::new(name, "must not be empty"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(raw: &str) -> BadParameter {
        parse(Some(raw), Route::Liveness).expect_err(raw)
    }

    #[test]
    fn no_query_is_everything() {
        assert_eq!(parse(None, Route::Liveness), Ok(Query::default()));
        assert_eq!(parse(Some(""), Route::Liveness), Ok(Query::default()));
    }

    #[test]
    fn every_parameter_parses() {
        let q = parse(
            Some("group=app%2Ftenants/&state=failed,backing_off&state=stopped&stale=true&prefix=tenant%2F&limit=50&after=tenant%2F9"),
            Route::Liveness,
        )
        .unwrap();
        assert_eq!(q.filter.group.as_deref(), Some("app/tenants"));
        let bits = Filter::state_bit(SubsystemState::Failed)
            | Filter::state_bit(SubsystemState::BackingOff)
            | Filter::state_bit(SubsystemState::Stopped);
        assert_eq!(q.filter.states, Some(bits));
        assert_eq!(q.filter.stale, Some(true));
        assert_eq!(q.filter.prefix.as_deref(), Some("tenant/"));
        assert_eq!(q.limit, Some(50));
        assert_eq!(q.after.as_deref(), Some("tenant/9"));
    }

    #[test]
    fn each_mistake_names_its_parameter() {
        assert_eq!(bad("stat=failed").parameter, "stat");
        assert_eq!(bad("state=dead").parameter, "state");
        assert!(bad("state=dead").message.contains("running, backing_off"));
        assert_eq!(bad("state=").parameter, "state");
        assert_eq!(bad("stale=yes").parameter, "stale");
        assert_eq!(bad("limit=0").parameter, "limit");
        assert_eq!(bad("limit=10001").parameter, "limit");
        assert_eq!(bad("limit=-1").parameter, "limit");
        assert_eq!(bad("group=").parameter, "group");
        assert_eq!(bad("group=a&group=b").parameter, "group");
        assert_eq!(bad("prefix=").parameter, "prefix");
        let long = format!("{}=1", "x".repeat(500));
        assert_eq!(bad(&long).parameter.len(), 64);
        // `after` pages a list; a summary has none.
        let e = parse(Some("after=x"), Route::Summary).unwrap_err();
        assert_eq!(e.parameter, "after");
    }
}
