"""The forum server: threaded posts, a feed of what is new, full-text search and votes."""
