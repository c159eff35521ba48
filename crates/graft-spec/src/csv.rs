//! The one CSV shape graft writes (`predictions.csv`): fields quoted when they hold text.

/// Splits one line into fields; `"..."` fields may hold commas and doubled quotes.
pub fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    out.push(field);
    out
}

/// A field for [`fields`] to read back.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_commas_and_quotes() {
        let line = format!("{},{},0.5", quote("a,b \"c\".jpg"), quote("ants"));
        assert_eq!(fields(&line), vec!["a,b \"c\".jpg", "ants", "0.5"]);
    }
}
