"""The rate report: rates.csv, summary.md, figures and a self-contained index.html."""
