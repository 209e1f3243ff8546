"""CrackWatch geodata package."""
