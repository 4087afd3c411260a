"""The CLI's verbs by topic; `cli.py` adds each module's `COMMANDS` to the group.

app (the context), options, command (issue/publish); catalog, customers, subscriptions,
billing, report, simulation, pipeline (the verbs); render, reads (output), errors.
"""
