"""The creator's browser app (python app.py): the person, driving, fast-avatar and evaluation
steps of the command lines in one local Gradio page, over the same packages."""
