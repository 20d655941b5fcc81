"""The workflow-scheduler component: runs the workflows on their cron schedules, serves their history.

``python -m sandbox.workflows.scheduler`` (the spec's ``workflow-scheduler``):
``GET /healthz``, ``GET /metrics``, ``GET /workflows``, ``GET /runs``,
``POST /runs/{name}``.  Settings: :class:`sandbox.workflows.settings.WorkflowSettings`
(``WORKFLOWS_*``), plus ``AETHER_HOST``/``AETHER_PORT`` and
``WORKFLOWS_SCHEDULER_ENABLED`` (``false``: serve the API and run on demand only).
"""
