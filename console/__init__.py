"""The Textual operator console for mailq."""
