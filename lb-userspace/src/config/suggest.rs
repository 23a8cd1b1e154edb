//! "did you mean ...?" for misspelt keywords, by Levenshtein distance.

/// Edit distance (insertions, deletions, substitutions) between two words.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // One row of the classic table, reused.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The closest candidate, if it is close enough to be a plausible typo:
/// within a third of the word's length (at least 1, at most 4 edits).
/// Case differences alone always count as close.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let length = word.chars().count();
    let limit = (length / 3).clamp(1, 4);
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        // A length difference alone costs that many edits: skip early.
        .filter(|c| c.chars().count().abs_diff(length) <= limit)
        .map(|c| {
            let distance = if c.to_ascii_lowercase() == lower {
                0
            } else {
                levenshtein(word, c)
            };
            (distance, c)
        })
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("lb_algo", "lb_algo"), 0);
        assert_eq!(levenshtein("delay_lop", "delay_loop"), 1);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let kws = ["delay_loop", "lvs_sched", "protocol", "real_server"];
        assert_eq!(closest("delay_lop", kws), Some("delay_loop"));
        assert_eq!(closest("protocl", kws), Some("protocol"));
        assert_eq!(closest("PROTOCOL", kws), Some("protocol"));
        assert_eq!(closest("xyz", kws), None);
        assert_eq!(closest("real_servers", kws), Some("real_server"));
    }
}
