//! `log.level`: accept what people type, refuse what would silence the worker.
//!
//! The value is a tracing filter (`info`, `info,runs_replicator=debug`). People also write
//! `warning`, trigger.dev's `log`, `ERROR`: those are levels, and read as such. tracing would
//! read a word that is not a level as a *target* (`warning` = "everything from a crate named
//! warning, nothing else") and `off` as nothing at all: both silence the worker, so a filter
//! under which the worker's own errors would not show is refused.

/// The crate's own target, which every line of the worker has (or starts with).
const OWN: &str = "runs_replicator";

/// A level word as people write it, as tracing's level; `None` when it is not one.
fn level(word: &str) -> Option<&'static str> {
    Some(match word.trim().to_ascii_lowercase().as_str() {
        // trigger.dev's `log` shows only "essential messages": the closest is error.
        "error" | "err" | "log" | "fatal" | "critical" => "error",
        "warn" | "warning" => "warn",
        "info" | "information" | "informational" | "notice" => "info",
        "debug" | "verbose" => "debug",
        "trace" => "trace",
        "off" | "none" | "silent" => "off",
        _ => return None,
    })
}

/// The filter with every level word spelled as tracing spells it; an error (what is allowed)
/// when it is not a filter or would silence the worker's own lines.
pub(super) fn normalize(value: &str) -> Result<String, String> {
    let mut out = Vec::new();
    // The level of the most specific directive that covers the worker's lines, and the
    // default (a directive without a target).
    let mut own: Option<(usize, &'static str)> = None;
    let mut default: Option<&'static str> = None;
    let mut bare_targets = Vec::new();
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        // Span and field filters are passed through as written, once tracing reads them.
        if directive.contains(['[', '{']) {
            directive
                .parse::<tracing_subscriber::filter::Directive>()
                .map_err(|e| format!("{directive:?} is not a tracing filter directive ({e})"))?;
            out.push(directive.to_string());
            continue;
        }
        match directive.rsplit_once('=') {
            Some((target, word)) => {
                let target = target.trim();
                let lvl = level(word).ok_or_else(|| {
                    format!(
                        "{word:?} in {directive:?} is not a level: expected error, warn, info, \
                         debug, trace or off (warning and trigger.dev's log are read too)"
                    )
                })?;
                if target.is_empty() {
                    default = Some(lvl);
                    out.push(lvl.to_string());
                    continue;
                }
                if OWN.starts_with(target) && own.is_none_or(|(len, _)| target.len() >= len) {
                    own = Some((target.len(), lvl));
                }
                out.push(format!("{target}={lvl}"));
            }
            None => match level(directive) {
                Some(lvl) => {
                    default = Some(lvl);
                    out.push(lvl.to_string());
                }
                // tracing's reading of a bare word: that target, at every level.
                None => {
                    if OWN.starts_with(directive)
                        && own.is_none_or(|(len, _)| directive.len() >= len)
                    {
                        own = Some((directive.len(), "trace"));
                    }
                    bare_targets.push(directive);
                    out.push(directive.to_string());
                }
            },
        }
    }
    let effective = own.map(|(_, l)| l).or(default).unwrap_or("off");
    if effective == "off" {
        return Err(match bare_targets.first() {
            Some(word) => format!(
                "expected a level (error, warn, info, debug, trace) or target=level directives: \
                 {word:?} alone is read as a tracing target and would silence the worker's own \
                 lines (write e.g. info,{word}=debug)"
            ),
            None if out.is_empty() => {
                "expected a level (error, warn, info, debug, trace): an empty filter would \
                 silence the worker"
                    .to_string()
            }
            None => "this filter silences the worker's own lines; the quietest allowed is error \
                     (trigger.dev's log)"
                .to_string(),
        });
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn levels_are_read_as_people_write_them() {
        for (typed, read) in [
            ("info", "info"),
            ("warning", "warn"),
            ("WARNING", "warn"),
            ("log", "error"),
            ("Error", "error"),
            ("debug", "debug"),
            ("info,runs_replicator=warning", "info,runs_replicator=warn"),
            ("info, hyper=off", "info,hyper=off"),
            ("runs_replicator=debug", "runs_replicator=debug"),
            ("runs_replicator", "runs_replicator"),
            (
                "warn,runs_replicator::daemon=off",
                "warn,runs_replicator::daemon=off",
            ),
            ("info,h2[conn]=debug", "info,h2[conn]=debug"),
        ] {
            assert_eq!(normalize(typed).as_deref(), Ok(read), "{typed}");
        }
    }

    #[test]
    fn what_would_silence_the_worker_is_refused() {
        for (typed, says) in [
            ("warnings", "\"warnings\" alone is read as a tracing target"),
            ("hyper", "\"hyper\" alone"),
            ("off", "silences the worker's own lines"),
            ("info,runs_replicator=off", "silences"),
            ("", "empty filter"),
            (" , ", "empty filter"),
            (
                "runs_replicator=loud",
                "\"loud\" in \"runs_replicator=loud\" is not a level",
            ),
        ] {
            let e = normalize(typed).unwrap_err();
            assert!(e.contains(says), "{typed:?}: {e}");
        }
    }
}
