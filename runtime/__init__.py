"""What several jobs share at run time: the adversarial update, precision, Adam, random-generator
state, the episode order, the run log and its pictures, command-line run settings."""
