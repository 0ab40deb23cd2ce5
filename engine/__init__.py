"""LLM-Lab's engine: everything that trains, evaluates and runs models.

The package itself stays torch-free so the app can import `engine.project`, `engine.events` and
`engine.worker` instantly; the modules that need torch import it themselves. Importing
`engine.model` registers the "llmlab" model type with transformers' Auto classes.
"""
