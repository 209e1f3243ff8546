"""CrackWatch jobs package."""
