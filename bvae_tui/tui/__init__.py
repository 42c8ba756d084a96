"""The Textual face: `bvae-tui` (also `bvae tui`, `python app.py`).

Layout, as in harlequin and toolong: ``app.py`` (the App and the run actions every screen
shares), ``screens/`` (runs, new_run, monitor; modals confirm, export, help, scores),
``widgets/`` (runs table, curve plot, KL bars, device picker, half-block image, log tail),
``model.py`` (what the screens show, read from run directories; no Textual), ``messages.py``
(what the watcher threads post), ``app.tcss`` (styles). The engine does all the work.
"""
