"""Scale-out: the engine as a Ray Serve deployment, and a remote engine the web app uses in its place."""
