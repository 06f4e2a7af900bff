"""What the notebooks draw and decide, above :mod:`repronets.runs`; the papers' analyses use it.

- :mod:`.plotting`  one style; figures as PNG+PDF; tables as Markdown/LaTeX/CSV
- :mod:`.explore`   interactive views of stored runs (ipywidgets, with a static image for headless builds)
- :mod:`.claims`    the claims ledger: claim files, verdicts from intervals over units, ledger pages
"""
