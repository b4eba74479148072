"""The PGR scoring server: hidden labels, quick validation feedback, official sandboxed submissions, leaderboard."""
