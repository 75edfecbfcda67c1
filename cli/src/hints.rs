//! The one-line hints of docs/ERRORS.md, read from the document itself so that the command
//! and the documentation can never disagree.

use slup_core::Code;

const ERRORS_MD: &str = include_str!("../../docs/ERRORS.md");

/// The hint for `code`, from its row in docs/ERRORS.md (`| number | name | meaning | hint |`).
pub fn hint(code: Code) -> Option<&'static str> {
    let prefix = format!("| {} | {} |", code.number(), code.name());
    let row = ERRORS_MD.lines().find(|l| l.starts_with(&prefix))?;
    let cells: Vec<&str> = row.trim().trim_matches('|').split(" | ").collect();
    cells.get(3).map(|h| h.trim()).filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_hint() {
        for c in Code::ALL {
            let h = hint(*c).unwrap_or_else(|| panic!("no hint for {c:?}"));
            assert!(h.len() > 20, "{c:?}: {h}");
        }
        assert!(hint(Code::TlsUnknownCa)
            .unwrap()
            .contains("intercepting TLS"));
    }
}
