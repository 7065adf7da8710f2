"""One module per console screen; modals are screens of their own."""
