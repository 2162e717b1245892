"""The users' data: fingerprints of files and data sets (cached by stat), reading CSV, gzip and
Parquet into frames with errors that name the file and column, and what each column becomes in a
pipeline."""
