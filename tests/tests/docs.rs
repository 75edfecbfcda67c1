//! The normative docs stay in step with the code:
//!
//! - `docs/ERRORS.md` lists every [`slup_core::Code`] with its exact number, name and message,
//!   and no number that is not a code;
//! - every ```` ```json wire ```` block of `docs/PROTOCOL.md` is, byte for byte, one of the golden
//!   messages in `core/testdata/golden/`, and every golden message is shown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use slup_core::Code;

fn read(rel: &str) -> String {
    let path = slup_tests::workspace_root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cells of a Markdown table row, trimmed; `None` for any other line.
fn table_cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

#[test]
fn error_codes_documented() {
    let doc = read("docs/ERRORS.md");
    // number -> (name, meaning), from every table row whose first cell is a number.
    let mut rows: BTreeMap<u16, (String, String)> = BTreeMap::new();
    for (i, line) in doc.lines().enumerate() {
        let Some(cells) = table_cells(line) else {
            continue;
        };
        let Some(first) = cells.first() else { continue };
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let number: u16 = first
            .parse()
            .unwrap_or_else(|e| panic!("ERRORS.md line {}: bad number {first:?}: {e}", i + 1));
        assert!(
            cells.len() >= 4,
            "ERRORS.md line {}: a code row needs number, name, meaning and hint",
            i + 1
        );
        let previous = rows.insert(number, (cells[1].to_string(), cells[2].to_string()));
        assert!(
            previous.is_none(),
            "ERRORS.md line {}: code {number} appears twice",
            i + 1
        );
    }

    for code in Code::ALL {
        let (name, meaning) = rows.get(&code.number()).unwrap_or_else(|| {
            panic!("ERRORS.md has no row for {} {}", code.number(), code.name())
        });
        assert_eq!(
            name,
            code.name(),
            "ERRORS.md row {} names the wrong code",
            code.number()
        );
        assert_eq!(
            meaning,
            code.message(),
            "ERRORS.md row {} ({}): the meaning must be the code's message",
            code.number(),
            code.name()
        );
    }

    let known: BTreeSet<u16> = Code::ALL.iter().map(|c| c.number()).collect();
    for (number, (name, _)) in &rows {
        assert!(
            known.contains(number),
            "ERRORS.md row {number} ({name}) is not a code in core/src/error.rs"
        );
    }
}

/// A backtick fence line (CommonMark): up to three spaces, at least three backticks, then the
/// rest of the line. Returns (backtick count, rest trimmed).
fn fence(line: &str) -> Option<(usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ticks = rest.len() - rest.trim_start_matches('`').len();
    (ticks >= 3).then(|| (ticks, rest[ticks..].trim()))
}

/// Every fenced code block whose info string is exactly `json wire`, as (line, content).
fn wire_blocks(doc: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    // (first line, opening fence length, is a `json wire` block, body lines)
    let mut open: Option<(usize, usize, bool, Vec<&str>)> = None;
    for (i, line) in doc.lines().enumerate() {
        match open.as_mut() {
            None => {
                // An info string holding a backtick makes the line inline code, not a fence.
                if let Some((ticks, info)) = fence(line).filter(|(_, info)| !info.contains('`')) {
                    open = Some((i + 1, ticks, info == "json wire", Vec::new()));
                }
            }
            Some((start, ticks, is_wire, body)) => {
                if fence(line).is_some_and(|(n, rest)| n >= *ticks && rest.is_empty()) {
                    if *is_wire {
                        blocks.push((*start, body.join("\n")));
                    }
                    open = None;
                } else {
                    body.push(line);
                }
            }
        }
    }
    assert!(open.is_none(), "PROTOCOL.md has an unclosed code fence");
    blocks
}

#[test]
fn protocol_examples_are_the_goldens() {
    let doc = read("docs/PROTOCOL.md");
    let dir = slup_tests::workspace_root().join("core/testdata/golden");
    let goldens = golden_files(&dir);
    assert!(!goldens.is_empty(), "no golden files in {}", dir.display());

    let blocks = wire_blocks(&doc);
    assert!(!blocks.is_empty(), "PROTOCOL.md has no ```json wire blocks");

    let mut shown = BTreeSet::new();
    for (line, body) in &blocks {
        let hit = goldens
            .iter()
            .find(|(_, bytes)| bytes.as_slice() == body.as_bytes());
        match hit {
            Some((name, _)) => {
                shown.insert(name.clone());
            }
            None => panic!(
                "PROTOCOL.md line {line}: this ```json wire block is not byte for byte a golden \
                 message of core/testdata/golden/:\n{body}"
            ),
        }
    }
    for (name, _) in &goldens {
        assert!(
            shown.contains(name),
            "golden message {name} is not shown in PROTOCOL.md as a ```json wire block"
        );
    }
}

/// Every `*.json` in the golden directory as (file name, bytes without trailing newlines).
fn golden_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let mut bytes = fs::read(&path).unwrap();
        while bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, bytes));
    }
    out.sort();
    out
}
