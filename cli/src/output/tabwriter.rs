//! Go's `text/tabwriter` as docker's tables use it
//! (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` in docker/cli's
//! `formatter.go`): elastic tabstops, where tab-terminated cells of
//! consecutive lines form a column as wide as its widest cell plus 3, at
//! least 10. The text after a line's last tab is in no column and is not
//! padded; a column's last cell is, so a row whose last field is empty ends
//! in spaces, as docker's do.

/// Minimum width of a column, padding included.
const MIN_WIDTH: usize = 10;
/// Spaces added to the widest cell of a column.
const PADDING: usize = 3;

struct Cell<'a> {
    text: &'a str,
    /// Width in characters (docker counts terminal columns; this counts
    /// characters, the same for everything but wide East Asian text).
    width: usize,
}

/// `text` (cells separated by tabs, lines by newlines) laid out as docker
/// lays out its tables.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<Cell>> = text
        .split('\n')
        .map(|line| {
            line.split('\t')
                .map(|text| Cell {
                    text,
                    width: text.chars().count(),
                })
                .collect()
        })
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

/// Go's `Writer.format`: lays out lines `line0..line1`, whose columns left of
/// `widths.len()` have the given widths, finding the blocks of the next
/// column (runs of lines that have a cell there) and recursing into each.
fn format(
    lines: &[Vec<Cell>],
    line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut printed = line0;
    let mut this = line0;
    while this < line1 {
        // The last cell of a line is in no column.
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, printed, this, widths, out);
        let block = this;
        let mut width = MIN_WIDTH;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].width + PADDING);
            this += 1;
        }
        widths.push(width);
        format(lines, block, this, widths, out);
        widths.pop();
        printed = this;
    }
    write_lines(lines, printed, line1, widths, out);
}

fn write_lines(
    lines: &[Vec<Cell>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell.text);
            if let Some(width) = widths.get(j) {
                out.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.width)));
            }
        }
        // The text after the last newline is written as it is.
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_dockers() {
        // docker/cli cli/command/stack/testdata/stack-services-without-format.golden
        assert_eq!(
            align(
                "ID\tNAME\tMODE\tREPLICAS\tIMAGE\tPORTS\n\
                 id-foo\tname-foo\treplicated\t0/2\tbusybox:latest\t*:30000->3232/tcp\n"
            ),
            "ID        NAME       MODE         REPLICAS   IMAGE            PORTS\n\
             id-foo    name-foo   replicated   0/2        busybox:latest   *:30000->3232/tcp\n"
        );
    }

    #[test]
    fn an_empty_last_field_leaves_the_padding_as_docker_does() {
        // docker/cli cli/command/stack/testdata/stack-ps-without-format.golden
        // ends its row in the ERROR column's padding.
        assert_eq!(
            align("NAME\tERROR\tPORTS\nweb.1\t\t\n"),
            "NAME      ERROR     PORTS\nweb.1               \n"
        );
    }

    #[test]
    fn a_line_without_tabs_ends_a_block() {
        assert_eq!(
            align("a\tb\nlonger-than-ten\tc\nno tabs here\nx\ty\n"),
            "a                 b\nlonger-than-ten   c\nno tabs here\nx         y\n"
        );
        assert_eq!(align(""), "");
        assert_eq!(align("只\t中\n"), "只         中\n");
    }
}
