"""The batch room: reading and writing batch files, and the batch tab."""
