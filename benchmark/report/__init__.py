"""The report of a store: stability statistics (``stats``), leaderboard tables (``tables``), figures
(``plots``) and the self-contained HTML page (``html``, with its ``templates`` and ``assets``).
``benchmark.report.leaderboard.write_report`` ties them together.
"""
