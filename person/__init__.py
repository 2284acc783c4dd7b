"""Making person models: embedding photos and clips, assembling a person from crops, fine-tuning."""
