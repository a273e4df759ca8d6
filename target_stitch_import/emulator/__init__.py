"""An embedded Stitch Import API emulator that stores rows in a local SQLite database."""
