"""Guard rails shared by every test."""
