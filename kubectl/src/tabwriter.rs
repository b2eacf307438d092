//! Go's `text/tabwriter` (flags 0, pad char ' '), which kubectl uses for every table and for
//! `describe`. The rule: a column block is a run of consecutive lines that all have a cell in that
//! column; the block's width is its widest cell plus `padding`, at least `min_width`. The text
//! after a line's last tab is not a cell, so the last column is never padded, and a line without
//! tabs ends every block (that is why `describe` sections align independently).

/// Lays out rows of cells; each row's last cell is the unpadded tail. Rows end with `\n`.
pub fn tabwrite(rows: &[Vec<String>], min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> =
        rows.iter().map(|row| if row.is_empty() { vec![""] } else { row.iter().map(String::as_str).collect() }).collect();
    Layout::new(&lines, min_width, padding).run()
}

/// Lays out text with `\t` between cells and `\n` between lines (what describe writes).
pub(crate) fn tabwrite_text(text: &str, min_width: usize, padding: usize) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<&str>> = body.split('\n').map(|line| line.split('\t').collect()).collect();
    let mut out = Layout::new(&lines, min_width, padding).run();
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

struct Layout<'a> {
    lines: &'a [Vec<&'a str>],
    min_width: usize,
    padding: usize,
    widths: Vec<usize>,
    out: String,
}

impl<'a> Layout<'a> {
    fn new(lines: &'a [Vec<&'a str>], min_width: usize, padding: usize) -> Self {
        Layout { lines, min_width, padding, widths: Vec::new(), out: String::new() }
    }

    fn run(mut self) -> String {
        self.format(0, self.lines.len());
        self.out
    }

    /// True if `line` has a (tab-terminated) cell in `column`.
    fn has_cell(&self, line: usize, column: usize) -> bool {
        column + 1 < self.lines[line].len()
    }

    fn format(&mut self, line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut written = line0;
        let mut this = line0;
        while this < line1 {
            if !self.has_cell(this, column) {
                this += 1;
                continue;
            }
            self.write_lines(written, this);
            let block = this;
            let mut width = self.min_width;
            while this < line1 && self.has_cell(this, column) {
                width = width.max(self.lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(block, this);
            self.widths.pop();
            written = this;
        }
        self.write_lines(written, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for line in &self.lines[line0..line1] {
            for (j, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if let Some(&width) = self.widths.get(j) {
                    let pad = width.saturating_sub(cell.chars().count());
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            self.out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows from text with `\t` between cells and `\n` between rows.
    fn rows(text: &str) -> Vec<Vec<String>> {
        text.lines().map(|l| l.split('\t').map(String::from).collect()).collect()
    }

    #[test]
    fn kubectl_service_table_cli1() {
        let out = tabwrite(
            &rows(
                "NAME\tTYPE\tCLUSTER-IP\tEXTERNAL-IP\tPORT(S)\tAGE\n\
                 my-nginx\tClusterIP\t10.0.162.149\t<none>\t80/TCP\t21s",
            ),
            6,
            3,
        );
        assert_eq!(
            out,
            "NAME       TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)   AGE\n\
             my-nginx   ClusterIP   10.0.162.149   <none>        80/TCP    21s\n"
        );
    }

    #[test]
    fn min_width_and_unpadded_last_column() {
        let out = tabwrite(&rows("A\tB\nC\tDDDDDDDDDD"), 6, 3);
        assert_eq!(out, "A     B\nC     DDDDDDDDDD\n");
    }

    #[test]
    fn lines_without_tabs_end_column_blocks() {
        let text = "Name:\tx\nLonger label:\ty\nSection:\n  IP:\t1.2.3.4\n";
        assert_eq!(tabwrite_text(text, 0, 2), "Name:          x\nLonger label:  y\nSection:\n  IP:  1.2.3.4\n");
    }

    #[test]
    fn nested_column_blocks() {
        // Only the Port line has a second cell, so its name column is padded on its own.
        let text = "Port:\thttp\t8080/TCP\nTargetPort:\t80/TCP\n";
        assert_eq!(tabwrite_text(text, 0, 2), "Port:        http  8080/TCP\nTargetPort:  80/TCP\n");
    }
}
