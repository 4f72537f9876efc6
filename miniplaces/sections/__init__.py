"""One module per report section. Each exposes ``TITLE``, ``NUMBER``, ``TOC`` and
``run(ctx: RunContext) -> SectionResult``, and optionally ``check(ctx)``, which validates inputs before any
section runs.

A section module is the glue between an analysis (pure computation in ``analyses/``) and the report:
it fetches inputs from the RunContext, calls the analysis through the cache, draws figures and
returns JSON-able data. Templates display exactly that data, so every number shown is in results.json.
"""
