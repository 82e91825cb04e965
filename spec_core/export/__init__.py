"""What leaves the tool: the one CSV writer (tables.py, safe against spreadsheet formulas) and
the modes as CSV / JSON and a self-contained HTML report (report.py)."""
