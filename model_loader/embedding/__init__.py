"""The embedding model (GTE-Chinese-Large) for the knowledge base and summary similarity; knows nothing of HTTP."""

from .demo import build_demo_embedding_model
from .embedder import Embedder, EmbedderStatus, cosine, embed_dir_problems
from .settings import EmbeddingSettings

__all__ = ["Embedder", "EmbedderStatus", "EmbeddingSettings", "build_demo_embedding_model", "cosine",
           "embed_dir_problems"]
