//! Bounds on the shape of client SQL, checked on tokens before any parser,
//! planner or optimizer builds a tree of it.
//!
//! sqlparser limits how deeply parentheses and subqueries nest, but builds
//! chains of operators (`1+1+…`), set operations (`… UNION ALL …`) and casts
//! (`x::int::text…`) in a loop: a tree as deep as the chain is long, which
//! every later recursive walk (planning, optimizing, displaying, dropping)
//! then has to descend. This check measures that depth on the token stream,
//! which the tokenizer produces without recursion, and refuses statements
//! that are too long or too deep with an error naming the bound. It is the
//! first thing every client statement passes.
//!
//! ```
//! use gyrus_engine::shape::{SqlBounds, check_shape};
//!
//! let bounds = SqlBounds::default();
//! assert!(check_shape("SELECT 1 + 1 FROM ad_performance", &bounds).is_ok());
//! let deep = format!("SELECT {}", vec!["1"; 50_000].join("+"));
//! assert!(check_shape(&deep, &bounds).is_err());
//! ```

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{EngineError, Result};

/// How long and how deep a client statement may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlBounds {
    /// Bytes of SQL text (`--max-sql-kb`).
    pub max_bytes: usize,
    /// Depth of the statement's tree: nested brackets plus the operators,
    /// casts and set operations chained inside them (`--max-sql-depth`).
    pub max_depth: usize,
    /// Values of one `IN (…)` list (`--max-in-list`): Delta scans turn a
    /// list into a chain of `OR`s as long as the list.
    pub max_in_list: usize,
}

impl Default for SqlBounds {
    fn default() -> Self {
        SqlBounds {
            max_bytes: 1 << 20,
            max_depth: 1_000,
            max_in_list: 50_000,
        }
    }
}

/// One bracket level: the operators chained in its current expression and
/// the set operations of its query; for the brackets of `IN (…)`, the values
/// listed so far.
#[derive(Default)]
struct Frame {
    chain: usize,
    sets: usize,
    in_list: Option<usize>,
}

/// The measures of a statement's shape.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    depth: usize,
    in_list: usize,
}

/// Refuses a statement longer than `bounds.max_bytes` or deeper than
/// `bounds.max_depth`, before it is parsed.
pub fn check_shape(sql: &str, bounds: &SqlBounds) -> Result<()> {
    if sql.len() > bounds.max_bytes {
        return Err(EngineError::TooLarge {
            what: format!("the statement is {} KiB", sql.len().div_ceil(1024)),
            limit: format!("{} KiB", bounds.max_bytes / 1024),
            setting: "--max-sql-kb",
        });
    }
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| EngineError::Query(e.to_string()))?;
    let Shape { depth, in_list } = measure(&tokens);
    if in_list > bounds.max_in_list {
        return Err(EngineError::TooLarge {
            what: format!("an IN list holds {in_list} values"),
            limit: format!("{} values", bounds.max_in_list),
            setting: "--max-in-list",
        });
    }
    if depth > bounds.max_depth {
        return Err(EngineError::TooLarge {
            what: format!(
                "the statement nests {depth} levels deep (brackets plus chained operators, casts and set operations)"
            ),
            limit: bounds.max_depth.to_string(),
            setting: "--max-sql-depth",
        });
    }
    Ok(())
}

/// The deepest the statement's tree gets (over the open brackets, one for
/// each plus its chained operators and set operations) and its longest
/// `IN` list.
fn measure(tokens: &[Token]) -> Shape {
    let mut frames = vec![Frame::default()];
    // The depth now: frames.len() plus every frame's chain and sets.
    let mut depth = 1;
    let mut deepest = depth;
    let mut longest_list = 0;
    let mut after_in = false;
    for token in tokens {
        if matches!(token, Token::Whitespace(_)) {
            continue;
        }
        let follows_in = std::mem::replace(
            &mut after_in,
            matches!(token, Token::Word(w) if w.keyword == Keyword::IN),
        );
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                frames.push(Frame {
                    in_list: (follows_in && *token == Token::LParen).then_some(1),
                    ..Frame::default()
                });
                depth += 1;
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if frames.len() > 1
                    && let Some(frame) = frames.pop()
                {
                    depth -= 1 + frame.chain + frame.sets;
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(frame) = frames.last_mut() {
                    depth -= frame.chain;
                    frame.chain = 0;
                    if let Some(values) = frame.in_list.as_mut() {
                        *values += 1;
                        longest_list = longest_list.max(*values);
                    }
                }
            }
            Token::Word(word) => match word.keyword {
                Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT | Keyword::MINUS => {
                    if let Some(frame) = frames.last_mut() {
                        frame.sets += 1;
                        depth += 1;
                    }
                }
                Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::COLLATE
                | Keyword::AT
                | Keyword::DIV => {
                    if let Some(frame) = frames.last_mut() {
                        frame.chain += 1;
                        depth += 1;
                    }
                }
                // `IN (SELECT …)` is a subquery, not a list.
                Keyword::SELECT if frames.last().is_some_and(|f| f.in_list == Some(1)) => {
                    if let Some(frame) = frames.last_mut() {
                        frame.in_list = None;
                    }
                }
                // A new clause or branch starts a new expression.
                Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::OFFSET
                | Keyword::QUALIFY
                | Keyword::WINDOW
                | Keyword::ON
                | Keyword::CASE
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::END => {
                    if let Some(frame) = frames.last_mut() {
                        depth -= frame.chain;
                        frame.chain = 0;
                    }
                }
                _ => {}
            },
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(..)
            | Token::NationalQuoteDelimitedStringLiteral(..)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_)
            | Token::Period
            | Token::Colon
            | Token::EOF => {}
            // Every other token is an operator: one more link in the chain.
            _ => {
                if let Some(frame) = frames.last_mut() {
                    frame.chain += 1;
                    depth += 1;
                }
            }
        }
        deepest = deepest.max(depth);
    }
    Shape {
        depth: deepest,
        in_list: longest_list,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> Shape {
        let dialect = GenericDialect {};
        measure(&Tokenizer::new(&dialect, sql).tokenize().unwrap())
    }

    fn depth(sql: &str) -> usize {
        shape(sql).depth
    }

    #[test]
    fn ordinary_queries_are_shallow() {
        assert!(depth("SELECT 1") <= 2);
        assert!(depth("SELECT a + b, c * d, e - f FROM t WHERE x = 1") <= 4);
        let wide = format!(
            "SELECT platform, sum(spend) FROM ad_performance WHERE campaign_id IN ({}) GROUP BY 1",
            (0..20_000)
                .map(|i| format!("'c{i}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(
            shape(&wide),
            Shape {
                depth: 3,
                in_list: 20_000
            }
        );
        let subquery = "SELECT 1 WHERE x IN (SELECT a, b FROM t) AND y IN (1, 2, 3)";
        assert_eq!(shape(subquery).in_list, 3);
        assert_eq!(shape("SELECT f(1, 2, 3, 4), (5, 6)").in_list, 0);
        let cases = format!(
            "SELECT CASE {} ELSE 0 END FROM t",
            (0..5_000)
                .map(|i| format!("WHEN x = {i} THEN {i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(depth(&cases) <= 4, "{}", depth(&cases));
    }

    #[test]
    fn chains_casts_and_set_operations_count() {
        let sum = format!("SELECT {}", vec!["1"; 5_000].join("+"));
        assert!(depth(&sum) >= 5_000);
        let unions = vec!["SELECT 1"; 3_000].join(" UNION ALL ");
        assert!(depth(&unions) >= 3_000);
        let casts = format!("SELECT 1{}", "::int".repeat(3_000));
        assert!(depth(&casts) >= 3_000);
        let nested = format!("SELECT {}1{}", "(".repeat(2_000), ")".repeat(2_000));
        assert!(depth(&nested) >= 2_000);
        let nots = format!("SELECT {} true", "NOT ".repeat(3_000));
        assert!(depth(&nots) >= 3_000);
    }

    #[test]
    fn errors_name_the_bound() {
        let bounds = SqlBounds {
            max_bytes: 100,
            max_depth: 10,
            max_in_list: 5,
        };
        let long = check_shape(&format!("SELECT '{}'", "x".repeat(200)), &bounds).unwrap_err();
        assert!(long.to_string().contains("--max-sql-kb"), "{long}");
        let deep = check_shape("SELECT 1+1+1+1+1+1+1+1+1+1+1+1", &bounds).unwrap_err();
        assert!(deep.to_string().contains("--max-sql-depth"), "{deep}");
        let list = check_shape("SELECT 1 WHERE 1 IN (1,2,3,4,5,6)", &bounds).unwrap_err();
        assert!(list.to_string().contains("--max-in-list"), "{list}");
        // Unbalanced brackets are the parser's to report, not a panic here.
        assert!(check_shape("SELECT ))))((", &bounds).is_ok());
    }
}
