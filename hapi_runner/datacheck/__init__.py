"""Know the data before training: ``check-data`` (counts, sizes, duplicates, leakage) and ``label-issues`` (labels that look wrong).

Modules: :mod:`.inventory` (what files there are, their headers),
:mod:`.hashes` (exact and perceptual hashes, near-duplicate pairs),
:mod:`.findings` (the summary), :mod:`.page` (``data_check.html``),
:mod:`.check` (the whole check), :mod:`.confident` (confident learning),
:mod:`.crossfit` (out-of-sample probabilities), :mod:`.label_issues`
(the CSV, its page and ``--apply``), :mod:`.commands` (the two commands).
"""
