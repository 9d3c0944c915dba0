"""Integrations with web frameworks: `cronjobs.contrib.django` and `cronjobs.contrib.flask`.

Each imports its framework; the core never imports these modules.
"""
