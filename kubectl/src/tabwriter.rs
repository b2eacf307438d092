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

/// kubectl's table writer under `get --watch` (its tabwriter's `RememberWidths`): each batch of
/// rows is laid out when it comes, every column as wide as the widest cell it has had so far
/// (plus padding, at least `min_width`), so that later lines line up with earlier ones as far
/// as they can, and a wider cell widens the column from then on.
#[derive(Debug, Clone)]
pub struct WatchWriter {
    min_width: usize,
    padding: usize,
    widths: Vec<usize>,
}

impl WatchWriter {
    pub fn new(min_width: usize, padding: usize) -> WatchWriter {
        WatchWriter { min_width, padding, widths: Vec::new() }
    }

    /// Starts column `index` at least `width` wide (kubectl's EVENT column is as wide as
    /// `MODIFIED` from the start).
    pub fn at_least(mut self, index: usize, width: usize) -> WatchWriter {
        if index >= self.widths.len() {
            self.widths.resize(index + 1, 0);
        }
        self.widths[index] = self.widths[index].max(width);
        self
    }

    /// Lays out `rows` (each row's last cell is the unpadded tail), remembering the widths.
    pub fn rows(&mut self, rows: &[Vec<String>]) -> String {
        for row in rows {
            for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                let w = (cell.chars().count() + self.padding).max(self.min_width);
                if i >= self.widths.len() {
                    self.widths.resize(i + 1, 0);
                }
                self.widths[i] = self.widths[i].max(w);
            }
        }
        let mut out = String::new();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    out.push_str(&format!("{cell:<width$}", width = self.widths[i]));
                } else {
                    out.push_str(cell);
                }
            }
            out.push('\n');
        }
        out
    }
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

    /// What kubectl 1.33 printed for `get pods -w` as a pod came and went.
    #[test]
    fn watch_lines_keep_the_widths_seen() {
        let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let mut w = WatchWriter::new(6, 3);
        let table = w.rows(&[row(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"]), row(&["x", "1/1", "Running", "0", "2m45s"])]);
        assert_eq!(table, "NAME   READY   STATUS    RESTARTS   AGE\nx      1/1     Running   0          2m45s\n");
        assert_eq!(w.rows(&[row(&["longername-pod", "0/1", "", "0", "1s"])]), "longername-pod   0/1               0          1s\n");
        assert_eq!(
            w.rows(&[row(&["longername-pod", "1/1", "Terminating", "0", "5s"])]),
            "longername-pod   1/1     Terminating   0          5s\n"
        );
        assert_eq!(w.rows(&[row(&["x", "1/1", "Running", "0", "5s"])]), "x                1/1     Running       0          5s\n");
    }

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
