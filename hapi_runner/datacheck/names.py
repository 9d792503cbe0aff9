"""The names of the files check-data and label-issues write (none of them inside a run folder)."""

DATA_CHECK_PAGE = "data_check.html"
LABEL_ISSUES_CSV = "label_issues.csv"
LABEL_ISSUES_PAGE = "label_issues.html"
LABEL_ISSUES_DIR = "label_issues"  # label-issues' default output folder, in the working folder
CORRECTED_LIST = "{split}_list.csv"  # --apply's output per split: train_list.csv, val_list.csv
