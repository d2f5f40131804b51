"""``catalogflow eval``: a workflow's actions measured on a golden set.

A golden file holds products with the value a careful reader would extract per field
(None where the text supports none). The workflow runs on them through the same step
runner as a task and writes nothing; :mod:`.scoring` turns the outputs into accuracy,
invented values, what the checks caught, what the moderation policy would have
approved unseen, and a reliability table; :mod:`.baseline` compares two reports so a
prompt or model change can be gated in CI.
"""
