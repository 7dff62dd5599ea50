"""Developer tools that generate committed files from the node definitions (run from the repository root):

    python -m tools.workflow_builder    # example_workflows/*.json and their .jpg thumbnails
    python -m tools.docs_builder        # web/docs/*.md

Tests rebuild both in memory and fail when the committed files differ.
"""
