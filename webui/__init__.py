"""The web edge of the appliance: Gradio UI, JSON API, health, metrics and request logs.

Start it with ``python -m webui``; build it in code with ``webui.app.build_app(engine, settings)``.
"""

import os

# The appliance never phones home; Gradio reads this when it is first imported.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
