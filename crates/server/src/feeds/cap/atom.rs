//! The Atom 1.0 feed of CAP messages: one entry per transition, newest first, each linking
//! its message (`rel="alternate"`, `application/cap+xml`) — the way CAP feeds are
//! syndicated to public-warning aggregators.
//!
//! Invariants: every text is XML-escaped; entry ids are the messages' identifiers as URNs,
//! so a reader recognises an entry it has seen.

use watchfloor_model::format_rfc3339;
use watchfloor_store::ChangeRow;

use super::{identifier, Sender};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The feed of `lines` (newest first) served at `base` (empty: links relative to the
/// server).
pub fn atom(sender: &Sender, base: &str, lines: &[ChangeRow]) -> String {
    let updated = lines.first().map_or(0, |l| l.at);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n<id>urn:watchfloor:cap:{}</id>\n<title>{}</title>\n<updated>{}</updated>\n<author><name>{}</name></author>\n<link rel=\"self\" href=\"{}/cap/feed.atom\"/>\n",
        escape(&sender.sender),
        escape(&format!("CAP — {}", sender.sender_name)),
        format_rfc3339(updated),
        escape(&sender.sender_name),
        escape(base),
    );
    for line in lines {
        let id = identifier(line);
        let a = &line.as_of();
        out.push_str(&format!(
            "<entry>\n<id>urn:watchfloor:cap:{id}</id>\n<title>{}</title>\n<updated>{}</updated>\n<link rel=\"alternate\" type=\"application/cap+xml\" href=\"{}/cap/alerts/{id}.xml\"/>\n<summary>{}</summary>\n</entry>\n",
            escape(&format!("{} — {} ({})", a.severity.as_str(), a.message, line.event)),
            format_rfc3339(line.at),
            escape(base),
            escape(&line.detail),
        ));
    }
    out.push_str("</feed>\n");
    out
}
