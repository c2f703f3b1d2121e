//! Splits a command string into words with the rules of github.com/google/shlex, which docker's
//! compose loader uses for string `command` / `entrypoint`: blanks separate words, `'…'` is
//! literal, `"…"` allows `\` to escape any character, `\` escapes outside quotes, and `#` at
//! the start of a word comments out the rest of the line.

pub fn split(input: &str) -> Result<Vec<String>, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Start,
        Word,
        Escaping,
        EscapingQuoted,
        DoubleQuoted,
        SingleQuoted,
        Comment,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut state = State::Start;
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    for c in input.chars() {
        state = match state {
            State::Start => match c {
                c if is_space(c) => State::Start,
                '"' => State::DoubleQuoted,
                '\'' => State::SingleQuoted,
                '\\' => State::Escaping,
                '#' => State::Comment,
                c => {
                    word.push(c);
                    State::Word
                }
            },
            State::Word => match c {
                c if is_space(c) => {
                    words.push(std::mem::take(&mut word));
                    State::Start
                }
                '"' => State::DoubleQuoted,
                '\'' => State::SingleQuoted,
                '\\' => State::Escaping,
                c => {
                    word.push(c);
                    State::Word
                }
            },
            State::Escaping => {
                word.push(c);
                State::Word
            }
            State::EscapingQuoted => {
                word.push(c);
                State::DoubleQuoted
            }
            State::DoubleQuoted => match c {
                '"' => State::Word,
                '\\' => State::EscapingQuoted,
                c => {
                    word.push(c);
                    State::DoubleQuoted
                }
            },
            State::SingleQuoted => match c {
                '\'' => State::Word,
                c => {
                    word.push(c);
                    State::SingleQuoted
                }
            },
            State::Comment => {
                if c == '\n' {
                    State::Start
                } else {
                    State::Comment
                }
            }
        };
    }
    match state {
        State::Start | State::Comment => {}
        State::Word => words.push(word),
        State::Escaping | State::EscapingQuoted => {
            return Err("EOF found after escape character".to_string())
        }
        State::DoubleQuoted | State::SingleQuoted => {
            return Err("EOF found when expecting closing quote".to_string())
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_like_google_shlex() {
        assert_eq!(
            split(r#"sh -c 'echo "hi there" && sleep 1'"#).unwrap(),
            vec!["sh", "-c", r#"echo "hi there" && sleep 1"#]
        );
        assert_eq!(
            split(r#"a\ b "c\"d" e\\"#).unwrap(),
            vec!["a b", "c\"d", "e\\"]
        );
        assert_eq!(
            split("echo a#b #comment\nnext").unwrap(),
            vec!["echo", "a#b", "next"]
        );
        assert_eq!(split("''").unwrap(), vec![""]);
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert!(split("echo 'open").is_err());
        assert!(split("trailing\\").is_err());
    }
}
