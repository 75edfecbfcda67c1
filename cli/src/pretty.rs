//! Indented JSON from the scanner's nodes: member order and every scalar's exact text are
//! kept (no number or string is re-encoded).

use slup_core::json::{Kind, Node};

/// Appends `node` to `out`, indented by two spaces per level starting at `level`.
pub fn pretty(node: &Node<'_>, level: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match node.kind() {
        Kind::Object => {
            let mut members = node.members().peekable();
            if members.peek().is_none() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            while let Some((name, value)) = members.next() {
                out.push_str(&pad(level + 1));
                out.push('"');
                out.push_str(name);
                out.push_str("\": ");
                pretty(&value, level + 1, out);
                if members.peek().is_some() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(level));
            out.push('}');
        }
        Kind::Array => {
            let mut elements = node.elements().peekable();
            if elements.peek().is_none() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            while let Some(value) = elements.next() {
                out.push_str(&pad(level + 1));
                pretty(&value, level + 1, out);
                if elements.peek().is_some() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(level));
            out.push(']');
        }
        _ => out.push_str(&String::from_utf8_lossy(node.bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_exact_scalars() {
        let input = br#"{"z":1.50,"a":[true,null,{}],"s":"\u0041"}"#;
        let node = Node::parse(input, &slup_core::json::PERMISSIVE_LIMITS).unwrap();
        let mut out = String::new();
        pretty(&node, 0, &mut out);
        assert_eq!(
            out,
            "{\n  \"z\": 1.50,\n  \"a\": [\n    true,\n    null,\n    {}\n  ],\n  \"s\": \"\\u0041\"\n}"
        );
    }
}
