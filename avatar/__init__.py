"""Person models: embedding a person, fine-tuning, the person-model file, export."""
