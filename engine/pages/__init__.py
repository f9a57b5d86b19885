"""Server-rendered pages for candidates and the support console."""
