//! The timeline view of one run: a self-contained HTML file (issue 7).
//! Being written; see `render`.

use super::RunReport;

/// The run as one self-contained HTML page.
pub fn render(report: &RunReport, title: &str) -> String {
    let _ = (report, title);
    String::new()
}
