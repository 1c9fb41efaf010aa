"""Fine-tuned injection classifier (see docs/classifier.md)."""
