"""The Gradio page: status bar, banner, device switch, the three task tabs and what their results look like."""
